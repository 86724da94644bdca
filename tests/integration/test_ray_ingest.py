"""`recsage ingest --engine ray` on a two-node loopback Ray cluster (`ray.cluster_utils.Cluster`),
on the generated shop with the real converters (OCR, MiniLM) and a real embedded Chroma store.

The one-process ingest is the reference: the Ray ingest, with its second node removed while that
node's actor holds a batch, must store every item once with the same ids, cards and metadata, and
the same vectors up to float noise; a rerun finds everything unchanged without starting Ray work.
One Ray run covers all three: each run pays for a cluster and actors that load the models."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install 'recsage[ray]'")

from agent.ingest import ray_engine
from agent.ingest.store import TEXT_COLLECTION, Store
from tests.fakes.shop import generate_shop
from tests.fakes.shop_cli import recsage_json

pytestmark = pytest.mark.integration
PRODUCTS = 24  # 8 batches of 3 over 2 actors: both busy when the node goes


@pytest.fixture(scope="module")
def shop_and_reference(tmp_path_factory, real_settings):
    shop = generate_shop(tmp_path_factory.mktemp("shop"), products=PRODUCTS, users=20, seed=3)
    reference = tmp_path_factory.mktemp("one_process")
    summary = recsage_json(shop.project_file, "ingest", "--store", reference)
    assert summary["ingested"] == PRODUCTS and not summary["failed"]
    return shop, dump(Store(reference))


def dump(store: Store) -> dict[str, tuple[str, dict, np.ndarray]]:
    got = store.collection(TEXT_COLLECTION).get(include=["documents", "metadatas", "embeddings"])
    return {i: (doc, meta, np.asarray(vec)) for i, doc, meta, vec
            in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True)}


def assert_same_store(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for item_id, (card, meta, vector) in want.items():
        assert got[item_id][0] == card, item_id
        assert got[item_id][1] == meta, item_id
        cosine = float(vector @ got[item_id][2]) / float(np.linalg.norm(vector) * np.linalg.norm(got[item_id][2]))
        assert cosine >= 0.99999, (item_id, cosine)


def test_ray_ingest_matches_the_one_process_ingest_through_a_lost_node_and_a_rerun_is_unchanged(
        cluster, shop_and_reference, tmp_path, monkeypatch):
    import ray

    head, worker = cluster
    shop, reference = shop_and_reference
    write, removed = ray_engine.write_records, []

    def write_then_remove(store, records):
        write(store, records)
        if not removed:
            # both CPUs held by actors: the worker node's actor is converting a batch right now
            assert ray.available_resources().get("CPU", 0) == 0
            head.remove_node(worker)
            removed.append(worker)

    monkeypatch.setattr(ray_engine, "write_records", write_then_remove)
    store = tmp_path / "ray_store"
    summary = recsage_json(shop.project_file, "ingest", "--store", store, "--engine", "ray",
                           "--ray-address", head.address, "--ray-actors", 2)
    assert removed and len([n for n in ray.nodes() if n["Alive"]]) == 1
    assert (summary["ingested"], summary["unchanged"], summary["items_in_store"]) == (PRODUCTS, 0, PRODUCTS)
    assert not summary["failed"] and any("2 actors" in note for note in summary["notes"])
    assert_same_store(dump(Store(store)), reference)  # every item once, as the one-process ingest wrote it

    again = recsage_json(shop.project_file, "ingest", "--store", store, "--engine", "ray", "--ray-address", head.address)
    assert (again["ingested"], again["unchanged"], again["items_in_store"]) == (0, PRODUCTS, PRODUCTS)
