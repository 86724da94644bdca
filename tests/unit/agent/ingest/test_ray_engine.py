"""The Ray ingest's actor and sink run in this process (no cluster): what the actors return and the
driver writes must equal the one-process ingest. The CPU check and connecting are
tests/unit/agent/core/test_ray_cluster.py's; the cluster itself is exercised in
tests/integration/test_ray_ingest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from agent.cli.main import cli
from agent.core.errors import InputError
from agent.core.ray_cluster import RayOptions
from agent.ingest import ray_engine
from agent.ingest.catalog import Item
from agent.ingest.converters import Conversion, MediaConverter
from agent.ingest.pipeline import Pipeline, content_hash, ingest, plan_ingest
from agent.ingest.ray_engine import ConvertActor, ingest_with_ray, to_rows, write_output
from agent.ingest.store import TEXT_COLLECTION, Store
from tests.conftest import FakeEmbedder, FakeImageReader


class VectorImage(MediaConverter):
    """An image model with vectors in its own collection: [characters, 1] of the file's text."""

    name, modality, collection = "vector-image", "image", "items_image_fake"

    def convert(self, path: Path) -> Conversion:
        text = Path(path).read_text()
        if text == "corrupt":
            raise InputError("not an image")
        return Conversion(embedding=[float(len(text)), 1.0])


def fake_pipeline(settings, modalities=None) -> Pipeline:
    return Pipeline(FakeEmbedder(), [FakeImageReader(), VectorImage(settings)], [], notes=[])


def shop_items(tmp_path: Path, n: int, corrupt: int | None = None) -> list[Item]:
    items = []
    for i in range(n):
        poster = tmp_path / f"{i}.txt"
        poster.write_text("corrupt" if i == corrupt else f"POSTER {i}")
        items.append(Item(id=f"sku-{i}", title=f"Lamp {i}", facets={"brand": ("Acme",)}, image=str(poster)))
    return items


# --- the actor and the sink, in process ------------------------------------------------------------

def digests_of(items: list[Item]) -> dict[str, str]:
    return {it.id: content_hash(it, "fake@1", "t") for it in items}


def as_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    """What ray.data hands a numpy-format map_batches call: a column per key."""
    return {key: np.array([r[key] for r in rows], dtype=object) for key in rows[0]}


def test_actor_output_written_by_the_sink_equals_the_one_process_ingest(tmp_path, fake_settings, monkeypatch):
    items = shop_items(tmp_path, 6, corrupt=2)
    monkeypatch.setattr("agent.ingest.pipeline.build_pipeline", fake_pipeline)
    reference = Store(tmp_path / "one_process")
    want = ingest(items, reference, fake_settings, progress=False, source="shop")
    assert want.ingested == 6

    store, written = Store(tmp_path / "ray"), set()
    report = ray_engine.new_report(store, None)
    _, digests, todo = plan_ingest(items, store, fake_settings, report, True, "shop", fake_pipeline)  # the driver
    assert todo == items and report.total == 6
    actor = ConvertActor(fake_settings, frozenset({"image"}), "shop", actor_cpus=1, factory=fake_pipeline)
    for start in (0, 4):  # two batches, as two actor calls
        out = actor(as_batch(to_rows(items[start:start + 4], digests)))
        assert write_output(store, out, report, written) == len(items[start:start + 4])
    assert actor.settings.threads == 1 and actor.settings.ocr_workers == 1  # the reserved CPUs, not the driver's

    for name in (TEXT_COLLECTION, "items_image_fake"):
        got = store.collection(name).get(include=["documents", "metadatas", "embeddings"])
        ref = reference.collection(name).get(include=["documents", "metadatas", "embeddings"])
        order, ref_order = np.argsort(got["ids"]), np.argsort(ref["ids"])
        assert [got["ids"][i] for i in order] == [ref["ids"][i] for i in ref_order]
        assert [got["documents"][i] for i in order] == [ref["documents"][i] for i in ref_order]
        assert [got["metadatas"][i] for i in order] == [ref["metadatas"][i] for i in ref_order]
        np.testing.assert_allclose(np.asarray(got["embeddings"])[order], np.asarray(ref["embeddings"])[ref_order])
    assert store.count("items_image_fake") == 5  # the corrupt poster has no image vector
    assert {(f.id, f.converter) for f in report.failed} == {("sku-2", "fake-image"), ("sku-2", "vector-image")}
    assert {(f.id, f.converter) for f in want.failed} == {(f.id, f.converter) for f in report.failed}
    assert report.seconds["embed:text"] >= 0 and "image:fake-image" in report.seconds


def test_a_batch_ray_reruns_overwrites_and_is_counted_once(tmp_path, fake_settings):
    items = shop_items(tmp_path, 3, corrupt=0)
    store, report, written = Store(tmp_path / "ray"), ray_engine.new_report(Store(tmp_path / "x"), None), set()
    actor = ConvertActor(fake_settings, frozenset({"image"}), None, actor_cpus=1, factory=fake_pipeline)
    out = actor(as_batch(to_rows(items, digests_of(items))))
    assert write_output(store, out, report, written) == 3
    assert write_output(store, out, report, written) == 0  # the same batch again, e.g. after a lost node
    assert store.count() == 3 and written == {"sku-0", "sku-1", "sku-2"}
    assert len(report.failed) == 2  # sku-0 by both image converters, reported once


def test_an_unchanged_catalog_never_reaches_ray(tmp_path, fake_settings, monkeypatch):
    items = shop_items(tmp_path, 4)
    monkeypatch.setattr("agent.ingest.pipeline.build_pipeline", fake_pipeline)
    store = Store(tmp_path / "store")
    ingest(items, store, fake_settings, progress=False)

    def no_cluster(address):
        raise AssertionError("a rerun with nothing to do must not start Ray")

    monkeypatch.setattr(ray_engine, "connected", no_cluster)
    again = ingest_with_ray(items, store, fake_settings, RayOptions(), progress=False, factory=fake_pipeline)
    assert (again.ingested, again.unchanged, again.items_in_store) == (0, 4, 4)


# --- the command line ------------------------------------------------------------------------------

def test_ray_flags_without_the_ray_engine_are_refused(tmp_path):
    result = CliRunner().invoke(cli, ["ingest", "--catalog", str(tmp_path / "c.jsonl"), "--store",
                                      str(tmp_path / "s"), "--ray-actors", "2", "--ray-address", "auto"])
    assert result.exit_code == 2 and "--ray-address, --ray-actors go with --engine ray" in result.stderr
