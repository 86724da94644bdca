import pytest

from agent.core.config import load_settings
from agent.core.errors import InputError


def test_toml_and_overrides(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('threads = 1\nbatch_size = 10\n[models]\nllm = "/x"\n')
    settings = load_settings(cfg, batch_size=20, threads=None)
    assert (settings.threads, settings.batch_size, settings.models) == (1, 20, {"llm": "/x"})


@pytest.mark.parametrize("text, message", [
    ("treads = 2", "treads"),
    ("threads = 0", "threads"),
    ("[models]\nbogus = 'x'", "unknown model role"),
    ("threads = [", "not valid TOML"),
])
def test_bad_config_names_the_problem(tmp_path, text, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(InputError, match=message):
        load_settings(cfg)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_settings(tmp_path / "nope.toml")
