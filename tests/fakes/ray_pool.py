"""Ray for tests: an in-process stand-in for :func:`agent.core.ray_cluster.map_in_order` (the work
split over several actor instances, each built once as Ray builds each actor of a pool, batches
handed out round-robin and their outputs collected in reverse, the way a cluster may finish them),
and the two-node loopback cluster of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from agent.core.ray_cluster import collect_in_order, indexed_rows


def as_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    """What ray.data hands a numpy-format map_batches call: a column per key."""
    return {key: np.array([r[key] for r in rows], dtype=object) for key in rows[0]}


class InProcessPool:
    """Call it like ``map_in_order``; ``actors`` built, and the batches each one got, are kept."""

    def __init__(self, actors: int = 2, batch: int = 2):
        self.size, self.batch = actors, batch
        self.actors: list = []
        self.batches: list[list[int]] = []

    def __call__(self, work, actor, actor_kwargs, options, max_batch, advance=lambda n: None, notes=None):
        rows = indexed_rows(work)
        self.actors = [actor(**actor_kwargs) for _ in range(self.size)]
        chunks = [rows[start:start + self.batch] for start in range(0, len(rows), self.batch)]
        outputs = []
        for n, chunk in enumerate(chunks):
            self.batches.append([r["index"] for r in chunk])
            outputs.append(self.actors[n % self.size](as_batch(chunk)))
        return collect_in_order(reversed(outputs), len(work), advance)


@contextmanager
def two_node_cluster() -> Iterator[tuple]:
    """``(cluster, worker node)``: a head and a worker node of one CPU each on loopback
    (``ray.cluster_utils.Cluster``), this process connected as the driver."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()
