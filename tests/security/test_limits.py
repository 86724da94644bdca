"""Hostile input, slice L: bounds on the work one request can cause (issue 15, classes 3 and 4, and
image pixels with a time budget). Audio headers through the real converter and `recsage transcribe`,
chat text through a real uvicorn server over fakes, prompts through the real LLM runtime on a tiny
model, images through the real decoder."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import httpx
import pytest

from agent.core.config import Settings
from agent.core.errors import InputError
from tests.fakes.server import FakeChatAgent, FakeRecommender

HOSTILE_RATES = (4_000_037, 2_147_483_647)
MB = 1 << 20


def claimed_rate_wav(path: Path, rate: int, data_bytes: int = 96_000) -> Path:
    """A mono 16-bit PCM WAV of silence whose header claims ``rate`` Hz (96 KB of samples)."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_bytes)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + data_bytes) + body + bytes(data_bytes))
    return path


def measured(fn):
    """(exception raised by fn, seconds, peak bytes allocated while it ran)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
        raised = None
    except Exception as exc:  # noqa: BLE001 - returned for the test to check
        raised = exc
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return raised, seconds, peak


# --- audio headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", HOSTILE_RATES)
def test_wav_claiming_a_huge_sample_rate_is_refused_from_its_header(tmp_path, rate):
    from plugins.whisper_audio import WhisperTranscriber

    path = claimed_rate_wav(tmp_path / "voice.wav", rate)
    raised, seconds, peak = measured(lambda: WhisperTranscriber(Settings()).convert(path))
    assert isinstance(raised, InputError), raised
    message = str(raised)
    assert f"{rate:,} Hz" in message and "audio_max_rate" in message and "voice.wav" in message
    assert str(tmp_path) not in message
    assert seconds < 1.0 and peak < 200 * MB, (seconds, peak)


def test_sample_rate_range_comes_from_settings(tmp_path):
    from plugins.whisper_audio import load_audio

    path = claimed_rate_wav(tmp_path / "low.wav", 8_000, data_bytes=16_000)
    assert load_audio(path, Settings()).size == 16_000  # 1 s at 8 kHz, resampled to 16 kHz
    with pytest.raises(InputError, match="audio_min_rate"):
        load_audio(path, Settings(audio_min_rate=11_025))


def test_audio_longer_than_the_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    import soundfile

    from plugins.whisper_audio import load_audio

    path = claimed_rate_wav(tmp_path / "long.wav", 8_000, data_bytes=96_000)  # 6 s

    def no_decoding(*args, **kwargs):
        raise AssertionError("the samples were read: the length check must come from the header")

    monkeypatch.setattr(soundfile, "read", no_decoding)
    raised, _, _ = measured(lambda: load_audio(path, Settings(max_audio_seconds=5.0)))
    assert isinstance(raised, InputError), raised
    assert "long.wav is 6 s long" in str(raised) and "max_audio_seconds" in str(raised)


@pytest.mark.parametrize("rate", HOSTILE_RATES)
def test_recsage_transcribe_prints_one_line_and_exits_2(tmp_path, rate):
    path = claimed_rate_wav(tmp_path / "note.wav", rate)
    recsage = str(Path(sys.executable).parent / "recsage")
    env = {**os.environ, "RECSAGE_HOME": str(tmp_path / "home")}  # no models needed to refuse it
    start = time.perf_counter()
    result = subprocess.run([recsage, "transcribe", str(path)], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0] and "sample rate" in lines[0], lines
    assert time.perf_counter() - start < 30


# --- a real server over fakes -------------------------------------------------------------------


class RecordingChatAgent(FakeChatAgent):
    """The fake agent, remembering each transcript it was asked to replay."""

    def __init__(self, recommender):
        super().__init__(recommender)
        self.transcripts: list[list[dict]] = []

    def session_from_messages(self, messages, user=None):
        self.transcripts.append(list(messages))
        return super().session_from_messages(messages, user)


class TranscribingRecommender(FakeRecommender):
    """The fake recommender, with the real audio converter in front of it."""

    def recommend(self, *, audio=None, **kwargs):
        if audio is not None:
            from plugins.whisper_audio import load_audio

            load_audio(audio, Settings())
        return super().recommend(audio=audio, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn on a free loopback port over the fakes, with the default limits."""
    import uvicorn

    from agent.server.app import create_app
    from tests.fakes.store import free_port

    recommender = TranscribingRecommender(tmp_path_factory.mktemp("posters"))
    agent = RecordingChatAgent(recommender)
    port = free_port()
    config = uvicorn.Config(create_app(recommender, agent, Settings()), host="127.0.0.1", port=port,
                            log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield base, agent
    uv.should_exit = True
    thread.join(timeout=10)


def test_a_200_kb_openai_message_is_refused_naming_its_index(server):
    base, agent = server
    huge = "recommend a film " * 12_000  # about 200 KB
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": huge}]}
    before = len(agent.transcripts)
    start = time.perf_counter()
    response = httpx.post(base + "/v1/chat/completions", json=body, timeout=30)
    assert time.perf_counter() - start < 5
    assert response.status_code == 413, response.text
    message = response.json()["error"]["message"]
    assert "message 1" in message and "max_message_chars" in message and "8,000" in message
    assert len(agent.transcripts) == before  # nothing was replayed, no model ran


def test_a_text_part_counts_like_a_string(server):
    base, _ = server
    parts = [{"type": "text", "text": "x" * 5_000}, {"type": "text", "text": "y" * 5_000}]
    response = httpx.post(base + "/v1/chat/completions", timeout=30,
                          json={"messages": [{"role": "user", "content": parts}]})
    assert response.status_code == 413 and "message 0" in response.json()["error"]["message"]


def test_a_long_transcript_loses_its_oldest_turns_with_a_note(server):
    base, agent = server
    messages = []
    for i in range(12):  # 24 messages of 7,000 characters: 168,000 in all, over 64,000
        messages += [{"role": "user", "content": f"turn {i} " + "a" * 7_000},
                     {"role": "assistant", "content": "b" * 7_000}]
    messages.append({"role": "user", "content": "something funny"})
    response = httpx.post(base + "/v1/chat/completions", json={"messages": messages}, timeout=30)
    assert response.status_code == 200, response.text
    replayed = agent.transcripts[-1]
    assert replayed[0]["role"] == "system" and "max_conversation_chars" in replayed[0]["content"]
    assert replayed[-1] == {"role": "user", "content": "something funny"}
    assert sum(len(m["content"]) for m in replayed[1:]) <= Settings().max_conversation_chars
    assert replayed[1:] == messages[len(messages) - len(replayed) + 1:]  # the newest turns, unchanged


def test_a_chat_message_over_the_limit_is_413(server):
    base, _ = server
    response = httpx.post(base + "/v1/chat", json={"message": "z" * 9_000}, timeout=30)
    assert response.status_code == 413, response.text
    assert "max_message_chars" in response.json()["error"]["message"]


def test_an_uploaded_wav_with_a_hostile_rate_is_a_4xx(server, tmp_path):
    base, _ = server
    wav = claimed_rate_wav(tmp_path / "x.wav", 2_147_483_647).read_bytes()
    start = time.perf_counter()
    response = httpx.post(base + "/v1/recommend", data={"k": "2"}, files={"audio": ("x.wav", wav)},
                          headers={"X-Recsage-Client": "1"}, timeout=60)  # the edge's cross-site guard
    assert time.perf_counter() - start < 5
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "sample rate" in message and "/tmp" not in message


def test_a_session_keeps_a_bounded_transcript():
    from agent.chat.state import ChatState

    state = ChatState()
    for i in range(100):
        state.turns.append({"role": "user", "content": f"{i} " + "w" * 5_000})
        state.trim(max_turns=1_000, max_chars=Settings().max_conversation_chars)
    assert sum(len(t["content"]) for t in state.turns) <= Settings().max_conversation_chars
    assert state.turns[-1]["content"].startswith("99 ")
    state.trim(max_turns=1_000, max_chars=10)  # the newest turn stays, however long
    assert len(state.turns) == 1 and state.turns[0]["content"].startswith("99 ")


def test_a_chat_session_trims_its_transcript_to_the_character_limit():
    from tests.fakes.chat import fake_agent

    session = fake_agent(Settings(chat_explain=False, max_message_chars=2_000, max_conversation_chars=2_000)).session()
    for text in ("a funny movie " + "x" * 900, "something scary " + "y" * 900, "a drama " + "z" * 900):
        list(session.send(text))
    assert sum(len(t["content"]) for t in session.history) <= 2_000
    assert session.history[-1]["role"] == "assistant"


# --- the LLM runtime: every forward pass within the token budget ------------------------------


@pytest.fixture(scope="module")
def tiny():
    from tests.fakes.tiny_lm import tiny_llama

    return tiny_llama()


def forward_widths(model) -> tuple[list[int], object]:
    """Record rows x tokens of every forward pass of ``model`` (and of its bare transformer)."""
    seen: list[int] = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            seen.append(int(ids.shape[0] * ids.shape[1]))

    handles = [model.register_forward_pre_hook(hook, with_kwargs=True),
               model.model.register_forward_pre_hook(hook, with_kwargs=True)]
    return seen, handles


def test_generation_cuts_a_prompt_to_the_budget_keeping_its_end(tiny):
    from agent.llm import LoadedLlm

    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok, max_forward_tokens=256)
    prompt = "q" * 6_000 + " the question at the end"  # over the budget and the tiny model's context
    seen, handles = forward_widths(model)
    try:
        cut = llm.generate([prompt], max_new_tokens=5, stop=())
    finally:
        for h in handles:
            h.remove()
    assert seen and max(seen) <= 256, seen
    end = LoadedLlm(model=model, tokenizer=tok).generate([prompt[-(256 - 5):]], max_new_tokens=5, stop=())
    assert cut == end


def test_a_large_batch_runs_in_passes_within_the_budget(tiny):
    from agent.llm import LoadedLlm

    model, tok = tiny
    prompts = [f"prompt number {i} " + "m" * (40 + i) for i in range(8)]
    small = LoadedLlm(model=model, tokenizer=tok, max_forward_tokens=256)
    seen, handles = forward_widths(model)
    streamed: dict[int, str] = {}
    try:
        batched = small.generate(prompts, max_new_tokens=4, stop=(),
                                 on_token=lambda i, t: streamed.__setitem__(i, streamed.get(i, "") + t))
    finally:
        for h in handles:
            h.remove()
    assert max(seen) <= 256 and len([s for s in seen if s > 8]) > 1, seen  # several prefill passes
    assert batched == [LoadedLlm(model=model, tokenizer=tok).generate([p], max_new_tokens=4, stop=())[0]
                       for p in prompts]
    assert [streamed.get(i, "").strip() for i in range(len(prompts))] == batched


def test_continuation_scoring_cuts_the_prompt(tiny):
    from agent.llm import LoadedLlm, continuation_logprobs

    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok, max_forward_tokens=200)
    prompt = "p" * 5_000 + " which tool?"
    options = ["recommend", "search"]
    seen, handles = forward_widths(model)
    try:
        cut = continuation_logprobs(llm, prompt, options)
    finally:
        for h in handles:
            h.remove()
    assert max(seen) <= 200, seen
    width = max(len(o) for o in options)  # one token per character
    assert cut == pytest.approx(continuation_logprobs(LoadedLlm(model=model, tokenizer=tok),
                                                      prompt[-(200 - width):], options), abs=1e-5)


def test_the_reranker_reads_a_bounded_request(tiny):
    """A 260,000-character request is cut to REQUEST_CHARS inside its own field: the model reads
    exactly what it reads for the request's first characters, and the system prompt stays."""
    import prompts
    from agent.rerank.prompt import REQUEST_CHARS
    from agent.rerank.reranker import LlmReranker

    model, tok = tiny
    reranker = LlmReranker(Settings(), model=model, tokenizer=tok)
    cards = ["Title: Toy Story (1995)\nGenres: Animation", "Title: Heat (1995)\nGenres: Crime"]
    huge = "a funny film " * 20_000
    start = time.perf_counter()
    scores = reranker.pointwise_scores(huge, cards)
    assert time.perf_counter() - start < 30
    assert scores == pytest.approx(reranker.pointwise_scores(huge[: REQUEST_CHARS + 50], cards))
    assert reranker.last_stats["prefix_tokens"] < REQUEST_CHARS + 1_000  # char-level tokenizer
    system = prompts.render("rerank_pointwise.j2", part="system", request="", history=[], card="", words=reranker.words)
    assert system.strip()[:40] in reranker.pointwise_prompt(huge, cards[0])


# --- images: refused from the header, Pillow's own check kept on -------------------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height, with one tiny compressed row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(("width", "height"), [(7_000, 7_000), (100_000, 100_000)])
def test_an_image_claiming_huge_dimensions_is_refused_before_decoding(tmp_path, width, height):
    from agent.ingest.images import load_image

    path = png_header_only(tmp_path / "poster.png", width, height)
    raised, seconds, peak = measured(lambda: load_image(path, Settings()))
    assert isinstance(raised, InputError), raised
    assert ("max_image_pixels" in str(raised) or "decompression bomb" in str(raised)) and "poster.png" in str(raised)
    assert str(tmp_path) not in str(raised)
    assert seconds < 1.0 and peak < 50 * MB, (seconds, peak)


def test_pillows_bomb_check_is_switched_back_on(tmp_path, monkeypatch):
    from PIL import Image

    from agent.ingest.images import decode_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    data = png_header_only(tmp_path / "p.png", 10_000, 10_000).read_bytes()
    with pytest.raises(InputError):
        decode_image(data, max_pixels=1_000_000)
    assert Image.MAX_IMAGE_PIXELS == 1_000_000


def dense_text_image(path: Path) -> Path:
    """A large image full of small text lines: many boxes for OCR's recognizer."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (1900, 1900), "white")
    draw = ImageDraw.Draw(img)
    for row in range(0, 1900, 14):
        draw.text((4, row), "THE QUICK BROWN FOX 1234 " * 12, fill="black")
    img.save(path)
    return path


@pytest.mark.integration
def test_ocr_over_its_time_budget_is_stopped_and_reported(real_settings, tmp_path):
    """A worker stuck on one image is killed after ``image_seconds``; the next image still reads."""
    from plugins.ocr import OcrConverter
    from tests.fakes.server import write_poster

    slow = dense_text_image(tmp_path / "dense.png")
    quick = write_poster(tmp_path / "quick.jpg")
    converter = OcrConverter(real_settings.with_overrides(image_seconds=1.0))
    results: list = [None, None]
    start = time.perf_counter()
    converter._retry_one_by_one([slow, quick], results)
    assert isinstance(results[0], InputError) and "image_seconds" in str(results[0]), results[0]
    assert "dense.png" in str(results[0]) and str(tmp_path) not in str(results[0])
    assert not isinstance(results[1], Exception), results[1]
    assert time.perf_counter() - start < 120
