"""The abuse benchmark's own pieces: its hostile inputs say what they claim, raw requests see an
early answer, and the verdict flags a 5xx, a leak, memory and time."""

from __future__ import annotations

import io
import os
import struct

import pytest
import soundfile
from PIL import Image

from eval.bench.abuse import Attack, Outcome, verdict
from eval.bench.abuse_io import (
    _chunked,
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
    frames = list(_chunked(2_500_000, size=1_000_000))
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


@pytest.mark.parametrize(("outcome", "growth", "slow", "ok"), [
    (Outcome(413, 0.2), 5.0, False, True),
    (Outcome(500, 0.2), 5.0, False, False),      # a 5xx
    (Outcome(None, 0.2), 5.0, False, False),     # no answer at all
    (Outcome(200, 0.2, "file text LEAKED"), 0.0, False, False),
    (Outcome(413, 0.2), 1500.0, False, False),   # 1.5 GB growth
    (Outcome(200, 25.0), 5.0, False, False),     # 25 s of server time
    (Outcome(408, 25.0), 5.0, True, True),       # a slow sender cut off at 25 s
    (Outcome(408, 150.0), 5.0, True, False),     # ... or read to the end
])
def test_verdict(outcome, growth, slow, ok):
    attack = Attack("x", "4xx", lambda server, scratch: outcome, slow_sender=slow)
    assert verdict(attack, outcome, growth) is ok


def test_a_chat_attack_may_take_a_normal_chat_plus_ten_seconds():
    attack = Attack("x", "200", lambda server, scratch: None, answers_chat=True)
    assert verdict(attack, Outcome(200, 15.0), 0.0, normal_chat_s=6.0)
    assert not verdict(attack, Outcome(200, 17.0), 0.0, normal_chat_s=6.0)
