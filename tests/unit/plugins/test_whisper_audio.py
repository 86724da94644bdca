"""Whisper audio converter: input checks (fast, no model) and transcription on real models.

Integration tests use the provisioned Whisper and Silero models and espeak-ng speech; they fail,
never skip, when something they need is missing, so CI cannot pass without running them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agent.core.config import Settings
from agent.core.errors import InputError, ModelNotReady
from plugins.whisper_audio import (
    SAMPLE_RATE,
    VAD_FRAME,
    WhisperTranscriber,
    load_audio,
    register_converters,
    speech_regions,
    validate_waveform,
)

# Plot-like paragraphs written for these tests (the IMDb plots in the data set must not be
# redistributed). Each is spoken as one ~20 s clip, like a voice note describing a film.
PLOTS = (
    "A retired detective returns to his home town to solve the murder of an old friend. "
    "Two sisters open a small bakery in Paris and fall in love with the same musician. "
    "After a storm destroys their village, a young girl and her dog travel across the mountains "
    "to find help. A group of students discover a secret map that leads them to a buried "
    "treasure under their school.",
    "An astronaut stranded on a distant planet must grow food to survive until a rescue mission "
    "arrives. A shy teacher enters a singing contest to save the music program at her school. "
    "When a famous painting is stolen from the museum, a clever thief is hired to bring it back. "
    "A father and his son drive across the country in an old car to reach the wedding on time.",
)
SHORT_PLOT = "A retired detective returns to his home town to solve the murder of an old friend."
MAX_WER = 0.15


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance / reference length, ignoring case and
    punctuation (apostrophes inside words are kept)."""

    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text.lower())

    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        raise ValueError("reference has no words")
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / len(ref)


def _write_wav(path: Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    sf.write(str(path), audio, rate, subtype="PCM_16")
    return path


def _sine(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _ffmpeg_encode(src: Path, dst: Path) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("the ffmpeg binary is required (apt-get install ffmpeg)")
    cmd = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-c:a", "aac", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


# --- WER helper -----------------------------------------------------------------------------


def test_wer_hand_computed():
    # "sat"->"sit" is one substitution, the second "the" is one deletion: 2 errors / 6 words.
    assert wer("the cat sat on the mat", "the cat sit on mat") == pytest.approx(2 / 6)
    assert wer("a b", "a x b") == pytest.approx(1 / 2)  # one insertion
    assert wer("Hello, World!", "hello world") == 0.0  # case and punctuation ignored
    assert wer("a boy's room", "a boys room") == pytest.approx(1 / 3)


# --- validate_waveform ------------------------------------------------------------------------


def test_validate_accepts_float32_mono_16k():
    validate_waveform(np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)


@pytest.mark.parametrize(
    ("audio", "rate", "message"),
    [
        (np.zeros(100, dtype=np.int16), SAMPLE_RATE, r"float32.*int16.*astype\(np.float32\) / 32768"),
        (np.zeros(100, dtype=np.float64), SAMPLE_RATE, r"float32.*float64.*astype\(np.float32\)"),
        (np.zeros((100, 2), dtype=np.float32), SAMPLE_RATE, r"mono.*\(100, 2\).*mean"),
        (np.array([0.0, np.nan], dtype=np.float32), SAMPLE_RATE, "NaN or infinite"),
        (np.array([0.0, np.inf], dtype=np.float32), SAMPLE_RATE, "NaN or infinite"),
        (np.zeros(0, dtype=np.float32), SAMPLE_RATE, "empty"),
        (np.zeros(100, dtype=np.float32), 44_100, r"16000 Hz, got 44100 Hz"),
        ([0.0, 0.1], SAMPLE_RATE, "numpy array"),
    ],
)
def test_validate_rejects_with_fix(audio, rate, message):
    with pytest.raises(InputError, match=message):
        validate_waveform(audio, rate)


# --- load_audio -------------------------------------------------------------------------------


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "nope.wav", Settings())


def test_load_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav", Settings())


def test_load_file_over_byte_limit(tmp_path):
    path = _write_wav(tmp_path / "a.wav", _sine(1.0, SAMPLE_RATE))
    with pytest.raises(InputError, match="max_audio_bytes"):
        load_audio(path, Settings(max_audio_bytes=1000))


def test_load_undecodable_bytes(tmp_path):
    path = tmp_path / "song.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(20_000))
    with pytest.raises(InputError, match="could not decode"):
        load_audio(path, Settings())


def test_load_too_long(tmp_path):
    path = _write_wav(tmp_path / "long.wav", _sine(3.0, SAMPLE_RATE))
    with pytest.raises(InputError, match="max_audio_seconds"):
        load_audio(path, Settings(max_audio_seconds=2.0))


def test_load_resamples_and_mixes_down(tmp_path):
    rate = 44_100
    left = _sine(2.0, rate, 440.0)
    path = _write_wav(tmp_path / "stereo.wav", np.stack([left, left], axis=1), rate)
    audio = load_audio(path, Settings())
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 2 * SAMPLE_RATE) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / audio.size
    assert abs(peak_hz - 440.0) < 2.0
    assert 0.25 < np.abs(audio[1000:-1000]).max() < 0.35  # amplitude survives resampling


def test_load_falls_back_to_ffmpeg(tmp_path):
    wav = _write_wav(tmp_path / "a.wav", _sine(2.0, 22_050, 440.0), 22_050)
    m4a = _ffmpeg_encode(wav, tmp_path / "a.m4a")  # AAC: libsndfile cannot read it
    with pytest.raises(Exception):
        sf.info(str(m4a))
    audio = load_audio(m4a, Settings())
    assert audio.dtype == np.float32
    assert abs(audio.size / SAMPLE_RATE - 2.0) < 0.1
    with pytest.raises(InputError, match="max_audio_seconds"):
        load_audio(m4a, Settings(max_audio_seconds=1.0))


# --- VAD regions ------------------------------------------------------------------------------


def test_speech_regions():
    frames = 200  # 6.4 s
    n = frames * VAD_FRAME
    probs = np.zeros(frames, dtype=np.float32)
    assert speech_regions(probs, 0.5, n) == []
    probs[10:13] = 0.9  # a 96 ms blip: too short to be speech
    assert speech_regions(probs, 0.5, n) == []
    probs[50:80] = 0.9
    probs[85:100] = 0.9  # 5 frames (160 ms) later: same utterance
    probs[190:200] = 0.9  # far away, runs to the end
    regions = speech_regions(probs, 0.5, n)
    pad = int(0.4 * SAMPLE_RATE)
    assert regions == [(50 * VAD_FRAME - pad, 100 * VAD_FRAME + pad), (190 * VAD_FRAME - pad, n)]
    assert speech_regions(probs, 0.95, n) == []  # threshold is respected


# --- plugin surface without models ------------------------------------------------------------


def test_registers_converter():
    seen = []
    register_converters(register=seen.append)
    assert seen == [WhisperTranscriber]
    assert WhisperTranscriber.name == "whisper" and WhisperTranscriber.modality == "audio"


def test_bad_array_rejected_before_model_load():
    transcriber = WhisperTranscriber(Settings(models={"whisper": "/nonexistent/base.pt"}))
    with pytest.raises(InputError, match="float32"):
        transcriber.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))
    assert transcriber._model is None


def test_unavailable_reason_names_the_problem():
    transcriber = WhisperTranscriber(Settings(models={"whisper": "/nonexistent/base.pt"}))
    assert "/nonexistent/base.pt" in transcriber.unavailable_reason()


# --- integration: real models -----------------------------------------------------------------


@pytest.fixture(scope="module")
def transcriber() -> WhisperTranscriber:
    from agent.core.config import load_settings
    from agent.provision.models import model_path

    settings = load_settings()
    for role in ("whisper", "vad"):
        try:
            model_path(settings, role)
        except ModelNotReady as exc:
            pytest.fail(f"integration test needs the {role!r} model: {exc}")
    return WhisperTranscriber(settings)


def _espeak(text: str, path: Path) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is required for speech tests (apt-get install espeak-ng)")
    subprocess.run([espeak, "-v", "en-us", "-w", str(path), text], check=True)
    return path


@pytest.mark.integration
@pytest.mark.parametrize("index", range(len(PLOTS)))
def test_transcribes_espeak_speech(transcriber, tmp_path, index):
    plot = PLOTS[index]
    result = transcriber.transcribe(_espeak(plot, tmp_path / "plot.wav"))
    text = result.card_fields["transcript"]
    assert result.details["text"] == text
    assert result.details["no_speech"] is False
    assert result.details["language"] == "en"
    assert wer(plot, text) <= MAX_WER, text


@pytest.mark.integration
def test_silence_file_gives_no_text(transcriber, tmp_path):
    path = _write_wav(tmp_path / "silence.wav", np.zeros(10 * SAMPLE_RATE, dtype=np.float32))
    result = transcriber.transcribe(path)
    assert result.card_fields["transcript"] == ""
    assert result.details["no_speech"] is True
    assert result.details["duration_s"] == pytest.approx(10.0)


@pytest.mark.integration
def test_white_noise_gives_no_text(transcriber):
    rng = np.random.default_rng(1)
    noise = np.clip(rng.normal(0.0, 0.2, 10 * SAMPLE_RATE), -1, 1).astype(np.float32)
    result = transcriber.transcribe(noise)
    assert result.card_fields["transcript"] == ""
    assert result.details["no_speech"] is True


@pytest.mark.integration
def test_speech_inside_silence_is_found(transcriber, tmp_path):
    speech = load_audio(_espeak(SHORT_PLOT, tmp_path / "plot.wav"), transcriber.settings)
    quiet = np.zeros(5 * SAMPLE_RATE, dtype=np.float32)
    result = transcriber.transcribe(np.concatenate([quiet, speech, quiet]))
    assert result.details["speech_s"] < result.details["duration_s"] - 5  # silence cut away
    assert wer(SHORT_PLOT, result.card_fields["transcript"]) <= MAX_WER, result.card_fields["transcript"]
