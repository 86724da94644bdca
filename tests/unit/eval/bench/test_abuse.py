"""The abuse benchmark's own pieces: its hostile inputs say what they claim, raw requests see an
early answer, and the verdict flags a 5xx, a leak, memory and time."""

from __future__ import annotations

import io
import os
import struct

import pytest
import soundfile
from PIL import Image

from eval.bench.abuse import Attack, Outcome, session_id_of, verdict
from eval.bench.abuse_io import (
    chunked_frames,
    huge_png_header,
    lying_wav,
    raw_request,
    rss_mb,
)


def test_lying_wav_header_claims_the_rate_but_holds_few_samples():
    data = lying_wav(4_000_037, n_bytes=96_000)
    info = soundfile.info(io.BytesIO(data))
    assert info.samplerate == 4_000_037
    assert info.frames == 48_000  # 96 KB of 16-bit mono samples


def test_huge_png_header_claims_ten_billion_pixels():
    data = huge_png_header()
    assert struct.unpack(">II", data[16:24]) == (100_000, 100_000)  # IHDR width, height
    with pytest.raises(Image.DecompressionBombError):  # Pillow refuses it from the header alone
        Image.open(io.BytesIO(data))


def test_chunked_encoding_frames_every_block_and_ends():
    frames = list(chunked_frames(2_500_000, size=1_000_000))
    assert frames[0].startswith(b"f4240\r\n") and frames[2].startswith(b"7a120\r\n")
    assert frames[-1] == b"0\r\n\r\n"


def test_raw_request_stops_sending_when_the_server_answers_early():
    """A server that answers 401 after the headers: the client must not push the whole body."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve_once():
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
        threading.Event().wait(0.5)
        conn.close()

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    body = (b"\0" * 1_000_000 for _ in range(500))
    status, seconds, sent = raw_request(listener.getsockname()[1], "POST / HTTP/1.1\r\nHost: x\r\n\r\n", body,
                                        answer_timeout_s=10)
    listener.close()
    assert status == 401
    assert sent < 100_000_000


def test_rss_of_this_process_is_positive():
    assert rss_mb(os.getpid()) > 1


@pytest.mark.parametrize(("expect", "outcome", "growth", "slow", "ok"), [
    ("413", Outcome(413, 0.2), 5.0, False, True),
    ("413", Outcome(400, 0.2), 5.0, False, False),    # refused, but not by the cap it tests
    ("401", Outcome(413, 0.2), 5.0, False, False),    # the token check did not answer first
    ("4xx", Outcome(422, 0.2), 5.0, False, True),
    ("4xx", Outcome(500, 0.2), 5.0, False, False),    # a 5xx
    ("4xx", Outcome(200, 0.2), 5.0, False, False),    # accepted what it should refuse
    ("4xx", Outcome(None, 0.2), 5.0, False, False),   # no answer at all
    ("200, file not read", Outcome(200, 0.2, "file text LEAKED"), 0.0, False, False),
    ("200", Outcome(200, 0.2, "next turn on that session NOT answered"), 0.0, False, False),
    ("413", Outcome(413, 0.2), 1500.0, False, False),  # 1.5 GB growth
    ("200", Outcome(200, 25.0), 5.0, False, False),    # 25 s of server time
    ("408", Outcome(408, 25.0), 5.0, True, True),      # a slow sender cut off at 25 s
    ("408", Outcome(408, 150.0), 5.0, True, False),    # ... or read to the end
])
def test_verdict(expect, outcome, growth, slow, ok):
    attack = Attack("x", expect, lambda server, scratch: outcome, slow_sender=slow)
    assert verdict(attack, outcome, growth) is ok


def test_a_chat_attack_may_take_a_normal_chat_plus_ten_seconds():
    attack = Attack("x", "200", lambda server, scratch: None, answers_chat=True)
    assert verdict(attack, Outcome(200, 15.0), 0.0, normal_chat_s=6.0)
    assert not verdict(attack, Outcome(200, 17.0), 0.0, normal_chat_s=6.0)


def test_the_session_id_comes_from_the_first_data_line_after_its_event_line():
    lines = ["event: session", 'data: {"type": "session", "session_id": "abc"}', "", "event: tool"]
    assert session_id_of(iter(lines)) == "abc"
    assert session_id_of(iter(["event: error"])) is None
