"""The ``--engine local|ray`` flags of the batch commands (``ingest``, ``eval``, ``finetune data``):
one decorator, one check, so the three say the same thing the same way."""

from __future__ import annotations

import click

from agent.core.errors import InputError


def ray_options(work: str, actors: str):
    """``--engine``, ``--ray-address``, ``--ray-actors``, ``--ray-actor-cpus``. ``work``: what runs
    as actor pools ("converters"); ``actors``: what one actor is ("converter actors")."""
    flags = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help=f"local: one process; ray: {work} as actor pools on a Ray cluster (extra recsage[ray])."),
        click.option("--ray-address", default=None,
                     help="With --engine ray: a running cluster (e.g. auto, HOST:6379); default a local one."),
        click.option("--ray-actors", type=click.IntRange(min=1), default=None,
                     help=f"With --engine ray: {actors} (default: as many as the cluster's CPUs hold)."),
        click.option("--ray-actor-cpus", type=click.IntRange(min=1), default=1, show_default=True,
                     help="With --engine ray: CPUs each actor reserves and uses."),
    ]

    def decorate(command):
        for flag in reversed(flags):
            command = flag(command)
        return command

    return decorate


def ray_engine(engine: str, address: str | None, actors: int | None, actor_cpus: int):
    """The :class:`~agent.core.ray_cluster.RayOptions` of ``--engine ray``, or None for ``local``
    (which refuses the Ray flags). Checks that Ray is installed before any data is read: a missing
    extra is the first thing to say."""
    given = [name for name, value in (("--ray-address", address), ("--ray-actors", actors)) if value is not None]
    if actor_cpus != 1:
        given.append("--ray-actor-cpus")
    if engine == "local":
        if given:
            raise InputError(f"{', '.join(given)} go with --engine ray")
        return None
    from agent.core.ray_cluster import RayOptions, import_ray

    import_ray()
    return RayOptions(address, actors, actor_cpus)
