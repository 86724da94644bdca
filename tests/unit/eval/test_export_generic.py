"""MovieLens exported as a generic catalog reads back, with no MovieLens loader, as the same split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from agent.core.project import movielens_project, read_project
from agent.ingest.catalog import load_movielens, load_source
from agent.retrieval.interactions import Split, make_split
from eval.export_generic import main


def _tiny_movielens(folder):
    """Movies 8..12 (so "9" < "10" matters), each rated by users 1, 2, 3, 4 and 10 (a 5-core as it
    is); user 1 rates 9 and 10 in the same second, user 2 rates 8, 9 and 12 in one second, so ties
    are broken by id; user 3 rates everything at once."""
    folder.mkdir()
    pd.DataFrame({"movieId": [8, 9, 10, 11, 12],
                  "title": ["Heat (1995)", "Up (2009)", "Alien (1979)", "Jaws (1975)", "Fargo (1996)"],
                  "genres": ["Crime|Drama", "Animation", "Horror|Sci-Fi", "(no genres listed)", "Crime"]}
                 ).to_csv(folder / "movies.csv", index=False)
    (folder / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,9,balloons,0\n2,9,Pixar,0\n1,8,heist,0\n")
    (folder / "plots.jsonl").write_text(json.dumps({"movieId": 10, "description": "In space.",
                                                    "director": ["Ridley Scott"], "runtime": "1h 57min"}) + "\n")
    rows = [(1, 8, 4.0, 100), (1, 9, 3.5, 200), (1, 10, 5.0, 200), (1, 11, 1.0, 300), (1, 12, 2.0, 50),
            (2, 12, 4.0, 10), (2, 9, 4.0, 10), (2, 8, 4.0, 10), (2, 10, 0.5, 20), (2, 11, 3.0, 30),
            (10, 11, 4.0, 5), (10, 10, 4.0, 4), (10, 9, 4.0, 3), (10, 8, 4.0, 2), (10, 12, 4.0, 1)]
    rows += [(3, m, 3.0, 7) for m in (12, 11, 10, 9, 8)] + [(4, m, 3.0, 9 - m) for m in (8, 9, 10, 11, 12)]
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    return folder


def _sequences(split: Split) -> dict[str, list[str]]:
    """Each user's whole sequence (history, validation, test) in original ids."""
    return {u: [split.item_ids[i] for i in (*split.history(n, "test"), split.test[n])]
            for u, n in split.user_index.items()}


def test_export_reads_back_as_the_same_split_and_items(tmp_path, capsys):
    ml = _tiny_movielens(tmp_path / "ml")
    main([str(ml), str(tmp_path / "generic")])
    project_file = tmp_path / "generic" / "recsage.toml"
    assert capsys.readouterr().out.strip() == str(project_file)
    generic = read_project(project_file)
    assert generic.catalog.resolved_format() == "jsonl" and generic.interactions.time == "when"
    assert "T" in (tmp_path / "generic" / "events.csv").read_text().splitlines()[1]  # ISO 8601 times

    ours = make_split(generic)
    theirs = make_split(movielens_project(ml, store=tmp_path / "store"))
    assert ours.stats() == theirs.stats() == {"users": 5, "items": 5, "interactions": 25}
    # natural order: ml8 < ml9 < ml10, u2 < u10, exactly MovieLens' numeric order
    assert ours.item_ids == ["ml8", "ml9", "ml10", "ml11", "ml12"] and ours.user_ids == ["u1", "u2", "u3", "u4", "u10"]
    assert _sequences(theirs)["1"] == ["12", "8", "9", "10", "11"]  # 9 before 10 in the same second
    assert _sequences(theirs)["2"] == ["8", "9", "12", "10", "11"]
    assert _sequences(theirs)["3"] == ["8", "9", "10", "11", "12"]
    assert _sequences(theirs)["4"] == ["12", "11", "10", "9", "8"]
    assert _sequences(ours) == {"u" + u: ["ml" + i for i in seq] for u, seq in _sequences(theirs).items()}
    assert all(np.array_equal(a, b) for a, b in zip(ours.train, theirs.train, strict=True))

    catalog = [json.loads(line) for line in (tmp_path / "generic" / "catalog.jsonl").read_text().splitlines()]
    assert catalog[2]["kind"] == ["Horror", "Sci-Fi"] and catalog[2]["about"] == "In space."  # its own columns
    assert "genres" not in catalog[2] and "plot" not in catalog[2] and catalog[2]["released"] == "1979"


def test_export_gives_the_movielens_items_but_for_their_ids(tmp_path):
    """The project file maps the export's columns onto MovieLens' field names: same cards."""
    ml = _tiny_movielens(tmp_path / "ml")
    main([str(ml), str(tmp_path / "generic")])
    generic = read_project(tmp_path / "generic" / "recsage.toml")
    exported = load_source(generic.catalog)
    assert not exported.rejected
    assert exported.items == [i.model_copy(update={"id": "ml" + i.id}) for i in load_movielens(ml).items]
    assert exported.items[1].tags == ("balloons", "Pixar")
