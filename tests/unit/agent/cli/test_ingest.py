"""The ingest command's text summary."""


def test_ingest_summary_tells_kept_rows_from_skipped_ones(capsys):
    from agent.cli.ingest import print_ingest_summary

    summary = {"ingested": 2, "unchanged": 0, "removed": 1, "failed": [], "notes": [], "items_in_store": 2, "store": "s",
               "seconds": {"embed": 0.5},
               "skipped": [{"file": "c.csv", "line": 3, "reason": "no title"},
                           {"file": "c.csv", "line": 4, "reason": "image path '../x' is outside", "kept": True}]}
    print_ingest_summary(summary)
    err = capsys.readouterr().err
    assert "removed 1, skipped 1, kept without media 1" in err
    assert "skipped c.csv:3: no title" in err and "kept without media c.csv:4" in err
