"""Fixtures several integration test modules share."""

import pytest


@pytest.fixture(scope="module")
def cluster():
    """A two-node loopback Ray cluster for one module (tests/fakes/ray_pool.py): (cluster, worker node)."""
    from tests.fakes.ray_pool import two_node_cluster

    with two_node_cluster() as head_and_worker:
        yield head_and_worker
