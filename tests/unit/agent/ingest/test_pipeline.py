"""Ingest with fake converters (fast) on a real embedded Chroma store."""

from pathlib import Path

import pytest

from agent.ingest.catalog import Item, RowError
from agent.ingest.pipeline import PARTIAL, Pipeline, content_hash, ingest
from agent.ingest.store import Store
from tests.conftest import FakeEmbedder, FakeImageReader


@pytest.fixture
def pipeline(monkeypatch):
    fake = Pipeline(FakeEmbedder(), [FakeImageReader()], [], notes=[])
    monkeypatch.setattr("agent.ingest.pipeline.build_pipeline", lambda settings, *_: fake)
    return fake


def _items(tmp_path: Path, n: int) -> list[Item]:
    items = []
    for i in range(n):
        poster = tmp_path / f"{i}.txt"
        poster.write_text(f"POSTER {i}")
        items.append(Item(id=str(i), title=f"Movie {i}", facets={"genres": ("Drama",)}, image=str(poster)))
    return items


def test_first_run_writes_everything_second_run_does_no_model_work(tmp_path, fake_settings, pipeline):
    store = Store(tmp_path / "store")
    items = _items(tmp_path, 10)
    report = ingest(items, store, fake_settings, progress=False)
    assert (report.ingested, report.unchanged, report.items_in_store) == (10, 0, store.count()) == (10, 0, 10)
    assert pipeline.embedder.calls == 10 and pipeline.image[0].calls == 10
    got = store.get(["3"])["3"]
    assert "Poster text: POSTER 3" in got["document"]
    assert got["metadata"]["poster_text"] == "POSTER 3"
    assert got["metadata"]["facets"] == '{"genres": ["Drama"]}' and "genres" not in got["metadata"]

    again = ingest(items, store, fake_settings, progress=False)
    assert (again.ingested, again.unchanged) == (0, 10)
    assert pipeline.embedder.calls == 10 and pipeline.image[0].calls == 10  # no model work


def test_changed_item_or_media_bytes_are_redone(tmp_path, fake_settings, pipeline):
    store = Store(tmp_path / "store")
    items = _items(tmp_path, 4)
    ingest(items, store, fake_settings, progress=False)
    Path(items[1].image).write_text("NEW POSTER")
    items[2] = items[2].model_copy(update={"title": "Renamed"})
    report = ingest(items, store, fake_settings, progress=False)
    assert (report.ingested, report.unchanged) == (2, 2)
    assert "NEW POSTER" in store.get(["1"])["1"]["document"]
    assert store.get(["2"])["2"]["metadata"]["title"] == "Renamed"
    assert store.count() == 4


def test_one_bad_image_fails_alone_and_is_retried(tmp_path, fake_settings, pipeline):
    store = Store(tmp_path / "store")
    items = _items(tmp_path, 6)
    Path(items[2].image).write_text("corrupt")
    items[4] = items[4].model_copy(update={"image": str(tmp_path / "missing.jpg")})
    rejected = [RowError("c.jsonl", 9, "id: Field required")]
    report = ingest(items, store, fake_settings, rejected=rejected, progress=False)
    assert report.ingested == 6 and store.count() == 6  # items kept with their other signals
    assert {(f.id, f.converter) for f in report.failed} == {("2", "fake-image"), ("4", "fake-image")}
    assert any("not a readable image" in f.reason for f in report.failed)
    assert any("not found" in f.reason for f in report.failed)
    assert report.skipped == rejected and report.total == 7
    assert store.get(["2"])["2"]["metadata"]["content_hash"].endswith(PARTIAL)

    again = ingest(items, store, fake_settings, progress=False)
    assert (again.ingested, again.unchanged) == (2, 4)  # only the failed ones are retried


def test_content_hash_depends_on_converter_versions(tmp_path):
    item = _items(tmp_path, 1)[0]
    assert content_hash(item, "a@1", "t") != content_hash(item, "a@2", "t")
    assert content_hash(item, "a@1", "t") == content_hash(item, "a@1", "t")


def test_search_ranks_matching_card_first(tmp_path, fake_settings, pipeline):
    store = Store(tmp_path / "store")
    items = [Item(id="1", title="Toy adventure", tags=("toys", "animated")),
             Item(id="2", title="War drama", tags=("war", "grim"))]
    ingest(items, store, fake_settings, progress=False)
    hits = store.query(FakeEmbedder().embed(["animated toys"])[0], k=2)
    assert [h.id for h in hits] == ["1", "2"] and hits[0].score > hits[1].score


def test_items_dropped_from_the_catalog_leave_every_item_collection(tmp_path, fake_settings, pipeline):
    store = Store(tmp_path / "store")
    items = _items(tmp_path, 5)
    ingest(items, store, fake_settings, progress=False, source="shop.jsonl")
    # as train-retriever writes them: collaborative vectors for the same items
    store.upsert([it.id for it in items], [[1.0, float(i)] for i in range(5)], None,
                 [{"title": it.title} for it in items], name="items_sasrec", space="ip")

    report = ingest(items[:4], store, fake_settings, progress=False, source="shop.jsonl")
    assert (report.removed, report.ingested, report.unchanged, report.items_in_store) == (1, 0, 4, 4)
    assert store.get(["4"]) == {} and store.get(["4"], name="items_sasrec") == {}
    assert store.count("items_sasrec") == 4
    assert any("removed 1 items" in note and "4" in note and "items_sasrec 1" in note for note in report.notes)
    assert report.to_json()["removed"] == 1

    again = ingest(items[:4], store, fake_settings, progress=False, source="shop.jsonl")
    assert (again.removed, again.ingested, again.unchanged) == (0, 0, 4)


def test_another_catalog_in_the_same_store_removes_none_of_the_first_ones_items(tmp_path, fake_settings, pipeline):
    store = Store(tmp_path / "store")
    ingest(_items(tmp_path, 3), store, fake_settings, progress=False, source="movies.csv")
    extra = [Item(id="x1", title="Extra")]
    report = ingest(extra, store, fake_settings, progress=False, source="extra.jsonl")
    assert (report.removed, report.items_in_store) == (0, 4)
    fewer = ingest(_items(tmp_path, 2), store, fake_settings, progress=False, source="movies.csv")
    assert fewer.removed == 1 and sorted(store.ids()) == ["0", "1", "x1"]


def test_a_partial_or_empty_catalog_removes_nothing_and_says_so(tmp_path, fake_settings, pipeline):
    store = Store(tmp_path / "store")
    ingest(_items(tmp_path, 3), store, fake_settings, progress=False, source="c.jsonl")

    partial = ingest(_items(tmp_path, 1), store, fake_settings, progress=False, prune=False, source="c.jsonl")
    assert partial.removed == 0 and store.count() == 3
    assert any("--limit" in note and "not removed" in note for note in partial.notes)

    empty = ingest([], store, fake_settings, progress=False, source="c.jsonl")
    assert empty.removed == 0 and store.count() == 3
    assert any("no items" in note and "nothing was removed" in note for note in empty.notes)


def test_a_text_only_catalog_needs_no_media_converter(monkeypatch, fake_settings):
    from agent.ingest import pipeline as pipeline_module
    from agent.ingest.converters import MediaConverter

    class NeverReady(MediaConverter):
        name, modality, version = "never-ready-ocr", "image", "1"

        def unavailable_reason(self):
            return "model not provisioned"

        def convert(self, path):  # pragma: no cover - never reached
            raise AssertionError

    monkeypatch.setattr("agent.plugins.converter_classes", lambda: {"never-ready-ocr": (NeverReady, "test")})
    monkeypatch.setattr(pipeline_module, "build_text_embedder", lambda settings: FakeEmbedder())
    text_only = [Item(id="1", title="A"), Item(id="2", title="B")]
    assert pipeline_module.catalog_modalities(text_only) == frozenset()
    assert pipeline_module.build_pipeline(fake_settings, pipeline_module.catalog_modalities(text_only)).image == []
    with_poster = [*text_only, Item(id="3", title="C", image="/x/3.jpg")]
    assert pipeline_module.catalog_modalities(with_poster) == {"image"}
    with pytest.raises(Exception, match="never-ready-ocr.*model not provisioned"):
        pipeline_module.build_pipeline(fake_settings, pipeline_module.catalog_modalities(with_poster))
