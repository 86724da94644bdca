"""``recsage config``: the settings' help, and the values a config file gives."""

import json

from click.testing import CliRunner

from agent.cli.main import cli


def test_config_lists_every_setting_with_its_help():
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0, result.output
    assert "max_message_chars (int, default 8000): Characters one chat message may hold" in result.output
    assert "body_read_timeout_s" in result.output


def test_config_json_shows_the_values_in_effect(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("max_message_chars = 500\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "--threads", "1", "config", "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert values["max_message_chars"] == 500 and values["threads"] == 1 and values["max_forward_tokens"] == 16384


def test_a_bad_value_names_the_setting_and_the_command_that_lists_them(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("threads = 0\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "config"])
    assert result.exit_code == 2
    assert "invalid setting 'threads'" in result.output and "`recsage config`" in result.output
