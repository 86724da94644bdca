"""The one progress display: a bar on a terminal, plain lines (or nothing) elsewhere."""

import io

from rich.console import Console

from agent.core.progress import progress, progress_bar


def test_off_a_terminal_progress_prints_nothing_and_yields_everything(capsys):
    assert list(progress(iter(range(3)), "items")) == [0, 1, 2]
    assert list(progress([4, 5], "items")) == [4, 5]
    assert capsys.readouterr().err == ""


def test_off_a_terminal_a_loop_may_ask_for_one_plain_line_per_step(capsys):
    with progress_bar("ingest", 5, plain_line=lambda done, of: f"ingest: {done}/{of} items stored") as advance:
        advance(2)
        advance(3, loss="0.1")
    assert capsys.readouterr().err.splitlines() == ["ingest: 2/5 items stored", "ingest: 5/5 items stored loss=0.1"]


def test_a_disabled_bar_prints_nothing_even_with_a_plain_line(capsys):
    with progress_bar("lora", 3, plain_line=lambda done, of: f"lora: step {done}/{of}", enabled=False) as advance:
        advance(1, loss="0.2")
    assert capsys.readouterr().err == ""


def test_on_a_terminal_a_bar_is_drawn(monkeypatch):
    out = io.StringIO()
    real = Console

    # The helper builds Console(stderr=True); hand it a terminal console that writes to ``out``.
    monkeypatch.setattr("rich.console.Console", lambda stderr: real(file=out, force_terminal=True, width=100))
    with progress_bar("eval sasrec [test]", 4, initial=1) as advance:
        advance(3, loss="0.25")
    text = out.getvalue()
    assert "eval sasrec [test]" in text and "4/4" in text and "loss=0.25" in text
