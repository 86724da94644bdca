"""The conversation benchmark: ReDial turns -> cases -> every system's ranking -> Recall@k table.

Every system ranks the same cases, so each pair of systems can be compared target by target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from agent.core.errors import InputError
from agent.core.progress import progress_bar
from agent.core.timing import percentiles
from eval.conversations.baselines import BASELINES, Case, Ranker, build_baselines
from eval.conversations.dialogues import Dialogue, load_dialogues, recommender_turns
from eval.conversations.mapping import TitleMapper, mapping_report
from eval.conversations.scoring import KS, paired_recall, recall_summary, target_ranks


def _mapped(ids: Iterable[str], dialogue: Dialogue, mapper: TitleMapper) -> list[str]:
    out = []
    for redial_id in ids:
        name = dialogue.titles.get(redial_id)
        item = mapper.map(name) if name else None
        if item is not None and item not in out:
            out.append(item)
    return out


def build_cases(dialogues: Sequence[Dialogue], mapper: TitleMapper) -> tuple[list[Case], dict]:
    """The cases (turns with at least one target that maps) and counts: turns, cases, targets,
    and the share of first namings that map."""
    cases, turns, names = [], 0, []
    for dialogue in dialogues:
        for turn in recommender_turns(dialogue):
            turns += 1
            names += [dialogue.titles[i] for i in turn.new if i in dialogue.titles]
            named = _mapped(turn.named_before, dialogue, mapper)
            targets = [t for t in _mapped(turn.new, dialogue, mapper) if t not in named]
            if targets:
                cases.append(Case(turn, tuple(named), tuple(targets)))
    counts = {"dialogues": len(dialogues), "turns": turns, "cases": len(cases),
              "targets": sum(len(c.targets) for c in cases),
              "mapping": mapping_report(names, mapper).to_json()}
    return cases, counts


def _plain(name: str):
    return lambda done, total: f"{name}: turn {done}/{total}"


def rank_cases(name: str, ranker: Ranker, cases: Sequence[Case], depth: int, show: bool = False) -> dict:
    """One system over every case: the rank of each target (case order) and seconds per case.
    Off a terminal a slow system (not a baseline) logs a line per turn, so a killed run's log says
    how far it got."""
    ranks: list[int] = []
    seconds: list[float] = []
    lengths: list[int] = []
    plain = None if name in BASELINES else _plain(name)
    with progress_bar(name, len(cases), plain, enabled=show) as advance:
        for case in cases:
            start = time.perf_counter()
            ranked = ranker(case, depth)
            seconds.append(time.perf_counter() - start)
            ranks += target_ranks(ranked, case.targets, case.named)
            lengths.append(len(ranked))
            advance(1)
    return {"ranks": ranks, "seconds": seconds, "list_length": sum(lengths) / len(lengths)}


def evaluate_systems(rankers: Mapping[str, Ranker], cases: Sequence[Case], ks: Sequence[int] = KS,
                     seed: int = 0, show: bool = False) -> dict:
    """``{"systems": {name: metrics, latency}, "paired": {name: {baseline: differences}}}``: each
    system against each baseline that comes before it in ``rankers``."""
    if not cases:
        raise ValueError("no turn has a target in the catalog: nothing to rank")
    depth = max(ks)
    runs = {name: rank_cases(name, ranker, cases, depth, show) for name, ranker in rankers.items()}
    systems = {name: {**recall_summary(run["ranks"], ks, seed), "latency_s": percentiles(run["seconds"]),
                      "turns": len(cases), "targets": len(run["ranks"]),
                      "mean_list_length": run["list_length"]} for name, run in runs.items()}
    names = list(runs)
    paired = {name: {base: paired_recall(runs[name]["ranks"], runs[base]["ranks"], ks, seed)
                     for base in names[:n] if base in BASELINES} for n, name in enumerate(names)}
    return {"systems": systems, "paired": {n: p for n, p in paired.items() if p}}


def conversation_report(path: Path, limit: int | None, systems: Sequence[str], catalog,
                        chat: Callable[[], Ranker] | None = None, seed: int = 0, show: bool = True) -> dict:
    """The benchmark on a ReDial file: ``catalog`` is the project's agent.chat.catalog.ChatCatalog
    (items and interactions log); ``chat`` builds the ranker of system "chat"
    (eval.conversations.chat_system), called once the file has given cases."""
    dialogues, skipped = load_dialogues(path, limit)
    wanted = [s for s in systems if s in BASELINES]
    if catalog.interactions is None and set(wanted) - {"bm25"}:
        raise InputError("popularity and item-cosine need the project's interactions log ([interactions] "
                         "in the project file, or --movielens DIR); or run --system bm25 / chat")
    mapper = TitleMapper(catalog.items.values(), catalog.rating_counts())
    cases, counts = build_cases(dialogues, mapper)
    if not cases:
        raise InputError(f"{path}: no recommender turn names a movie that maps to the catalog by title and year; "
                         "is the project's catalog MovieLens (--movielens DIR)?")
    rankers = build_baselines(wanted, list(catalog.items.values()), catalog.interactions)
    if chat is not None:
        rankers["chat"] = chat()
    result = evaluate_systems({s: rankers[s] for s in systems if s in rankers}, cases, seed=seed, show=show)
    out = {"dialogues_file": str(path), **counts, "skipped_lines": skipped, **result}
    if chat is not None:
        out["chat_tools"] = dict(getattr(rankers["chat"], "tools", {}))
    return out
