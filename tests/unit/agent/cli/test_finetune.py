"""`recsage finetune data` builds its rows with the reranker's own prompt, in the project's words:
a shop trains on shop prompts (the rows themselves: tests/unit/finetune/rerank_data)."""

from __future__ import annotations

from click.testing import CliRunner

from agent.cli.main import cli
from agent.core.errors import InputError
from agent.core.project import MOVIE_WORDS


def test_the_training_rows_reranker_says_the_projects_words(tmp_path, monkeypatch):
    from agent.rerank import reranker

    built = []

    def record(settings, *, words=MOVIE_WORDS, **kwargs):
        built.append(words)
        raise InputError("stopped after the reranker was built")

    monkeypatch.setattr(reranker, "LlmReranker", record)
    project = tmp_path / "recsage.toml"
    project.write_text('[catalog]\npath = "shop.jsonl"\nnoun = "product"\nverb = "bought"\naudience = "shopper"\n'
                       '[store]\npath = "store"\n')
    result = CliRunner().invoke(cli, ["--project", str(project), "finetune", "data", "--sequential", "1",
                                      "--out", str(tmp_path / "rows.jsonl")])
    assert result.exit_code == 2 and "stopped after the reranker was built" in result.stderr
    [words] = built
    assert (words.noun, words.verb, words.audience) == ("product", "bought", "shopper")
