"""The Recommender hands the project's catalog words to the parts that render prompts (the whole
recommendation flow runs in tests/unit/agent/cli/test_recommend.py and tests/integration)."""

from __future__ import annotations

from agent.core.config import Settings
from agent.core.project import CatalogSource, Project, StoreTarget
from agent.recommend.recommender import Recommender


def test_the_reranker_is_built_with_the_projects_words(tmp_path, monkeypatch):
    from agent.rerank import reranker

    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "chroma.sqlite3").write_bytes(b"")  # what require_store looks for
    project = Project(catalog=CatalogSource(path=tmp_path / "shop.jsonl", noun="product", verb="bought"),
                      store=StoreTarget(path=tmp_path / "store"))
    monkeypatch.setattr(reranker, "load_reranker", lambda settings, words: ("reranker", words))
    _, words = Recommender(project, Settings()).reranker
    assert (words.noun, words.nouns, words.verb, words.audience) == ("product", "products", "bought", "user")
