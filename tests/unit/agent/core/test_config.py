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


# --- task_models: which LLM role serves each task ------------------------------------------------


def test_every_task_uses_the_llm_role_by_default():
    settings = load_settings()
    assert settings.task_models == {"understand": "llm", "tool_choice": "llm", "rerank": "llm",
                                    "explain": "llm", "answer": "llm"}
    assert settings.llm_role("rerank") == "llm"


def test_a_config_file_moves_one_task_and_the_rest_stay_on_llm(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('task_models = {explain = "llm_qwen05", answer = "llm_qwen15"}\n')
    settings = load_settings(cfg)
    assert settings.llm_role("explain") == "llm_qwen05"
    assert settings.llm_role("answer") == "llm_qwen15"
    assert [settings.llm_role(t) for t in ("understand", "tool_choice", "rerank")] == ["llm"] * 3


@pytest.mark.parametrize("text, message", [
    ('task_models = {explian = "llm"}', "unknown task 'explian'"),
    ('task_models = {explain = "whisper"}', "not an LLM role"),
    ('task_models = {explain = "qwen"}', "not an LLM role"),
])
def test_bad_task_models_name_the_task_or_role(tmp_path, text, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text + "\n")
    with pytest.raises(InputError, match=message):
        load_settings(cfg)


def test_an_unknown_task_is_refused_at_lookup():
    with pytest.raises(ValueError, match="unknown LLM task"):
        load_settings().llm_role("summarise")
