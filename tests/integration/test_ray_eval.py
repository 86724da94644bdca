"""`recsage eval --engine ray` and `recsage finetune data --engine ray` on a two-node loopback Ray
cluster (`ray.cluster_utils.Cluster`), on the generated shop with its trained retriever, the real
LLM reranker and a real embedded Chroma store.

The one-process commands are the reference: the reranker is deterministic (logits), so the users
ranked by two actors on two nodes must give the same run (every user's top 50 in the same order,
scores equal up to float summation order) and the same metrics, and the sequential windows' candidates from two actors the same training rows in
the same order. A request for more actor CPUs than the cluster has is refused before any work."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install 'recsage[ray]'")

from click.testing import CliRunner

from agent.cli.main import cli
from tests.fakes.shop import generate_shop
from tests.fakes.shop_cli import build, recsage, recsage_json

pytestmark = pytest.mark.integration
USERS = 6  # 2 a batch over 2 actors (USERS_PER_BATCH caps, the pool size sets it lower)


@pytest.fixture(scope="module")
def shop(tmp_path_factory, real_settings):
    shop = generate_shop(tmp_path_factory.mktemp("shop"), products=30, users=40, seed=5)
    build(shop)
    return shop


def eval_rerank(shop, run_file, *engine) -> dict:
    return recsage_json(shop.project_file, "eval", "--system", "rerank", "--users", USERS, "--run", run_file, *engine)


def test_ray_eval_of_the_reranker_matches_the_one_process_eval(cluster, shop, tmp_path):
    head, _worker = cluster
    local = eval_rerank(shop, tmp_path / "local.json")
    ray_row = eval_rerank(shop, tmp_path / "ray.json", "--engine", "ray", "--ray-address", head.address,
                          "--ray-actors", 2)

    local_run, ray_run = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("local", "ray"))
    assert len(local_run) == USERS and list(ray_run) == list(local_run)
    for user, top in local_run.items():
        assert list(ray_run[user]) == list(top), user  # every user's top 50 in the same order
        # the same scores up to float summation order (numpy's BLAS threads differ in a Ray worker)
        assert ray_run[user] == pytest.approx(top, rel=1e-9), user
    assert ray_row["metrics"] == local["metrics"] and ray_row["ndcg@10_ci95"] == local["ndcg@10_ci95"]
    assert (ray_row["system"], ray_row["users"]) == (local["system"], USERS)
    timing = ("rerank_p50_s", "rerank_p95_s")
    assert {k: v for k, v in ray_row["rerank"].items() if k not in timing} == \
        {k: v for k, v in local["rerank"].items() if k not in timing}
    assert ray_row["rerank"]["rerank_p50_s"] > 0  # the actors' reranker seconds reached the driver


def test_ray_finetune_data_writes_the_one_process_rows(cluster, shop, tmp_path):
    head, _worker = cluster
    for name, engine in (("local", ()), ("ray", ("--engine", "ray", "--ray-address", head.address))):
        recsage(shop.project_file, "finetune", "data", "-n", 0, "--sequential", 12, "--out",
                tmp_path / f"{name}.jsonl", *engine)
    local = (tmp_path / "local.jsonl").read_text().splitlines()
    assert local and (tmp_path / "ray.jsonl").read_text().splitlines() == local


def test_more_actor_cpus_than_the_cluster_has_are_refused(cluster, shop, tmp_path):
    head, _worker = cluster
    result = CliRunner().invoke(cli, ["--project", str(shop.project_file), "eval", "--system", "hybrid", "--users",
                                      "2", "--engine", "ray", "--ray-address", head.address, "--ray-actor-cpus", "2"])
    assert result.exit_code == 2, result.stderr[-2000:]
    assert "asks for 2 CPUs but the largest node of the cluster has 1" in result.stderr
