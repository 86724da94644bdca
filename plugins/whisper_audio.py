"""Voice notes and item audio -> transcript text, with Whisper behind a Silero VAD gate.

Why the gate: Whisper decodes *something* from any 30 s window; on silence it says "you" and on
noise it makes up a sentence. Silero VAD decides first whether there is speech at all (and where),
only the speech regions reach Whisper, and each Whisper segment whose no-speech probability is above
``settings.no_speech_threshold`` is dropped. The result is an empty transcript with
``no_speech=True`` rather than an invented one.

Why the validation: Whisper given int16, float64, NaN or stereo arrays fails with misleading
errors (or transcribes garbage), so arrays are checked up front with messages that say how to fix
them, and files are decoded here (soundfile, then the ffmpeg binary) into float32 16 kHz mono.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np

from agent.core.errors import InputError, MissingDependency, ModelNotReady
from agent.hookspecs import hookimpl
from agent.ingest.converters import Conversion, MediaConverter
from agent.ingest.files import check_media_file

SAMPLE_RATE = 16_000
VAD_FRAME = 512  # Silero's window at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous window that Silero v5/v6 sees in front of each frame
MIN_SPEECH_S = 0.25  # a region needs this much VAD speech to count (Silero's default)
MAX_GAP_S = 1.0  # speech regions closer than this are merged
PAD_S = 0.4  # audio kept around each region so word edges are not clipped
MAX_COMPRESSION_RATIO = 2.4  # Whisper's own "decoding failed" threshold: repetition loops


def validate_waveform(audio: np.ndarray, sample_rate: int) -> None:
    """Reject arrays Whisper would mis-handle, saying what to convert them to."""
    if not isinstance(audio, np.ndarray):
        raise InputError(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.dtype != np.float32:
        if np.issubdtype(audio.dtype, np.integer):
            full_scale = 2 ** (8 * audio.dtype.itemsize - 1)
            fix = f"audio.astype(np.float32) / {full_scale}"
        else:
            fix = "audio.astype(np.float32)"
        raise InputError(
            f"audio must be float32 samples in [-1, 1], got {audio.dtype}; convert with {fix}"
        )
    if audio.ndim != 1:
        raise InputError(
            f"audio must be mono, a 1-D array of samples; got shape {audio.shape}. "
            "Mix channels down first, e.g. audio.mean(axis=1) for (samples, channels)"
        )
    if audio.size == 0:
        raise InputError("audio is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise InputError("audio contains NaN or infinite samples; fix or drop the recording")
    if sample_rate != SAMPLE_RATE:
        raise InputError(
            f"audio must be sampled at {SAMPLE_RATE} Hz, got {sample_rate} Hz; resample it "
            "(load_audio does this for files)"
        )


def _header(path: Path, settings):
    """The file's soundfile header checked against the limits, or None when libsndfile cannot
    read the format. The header is trusted for nothing: the sample rate and the length it claims
    are checked here, before any sample is decoded or resampled (resampling costs grow with the
    claimed rate, whatever the file's size)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    rate, low, high = info.samplerate, settings.audio_min_rate, settings.audio_max_rate
    if not low <= rate <= high:
        raise InputError(
            f"{path.name} claims a sample rate of {rate:,} Hz, outside {low:,}..{high:,} Hz "
            "(settings audio_min_rate, audio_max_rate); re-encode it, e.g. at 16 kHz"
        )
    if info.frames > 0 and info.frames / rate > settings.max_audio_seconds:
        raise InputError(
            f"{path.name} is {info.frames / rate:.0f} s long; the limit is "
            f"{settings.max_audio_seconds:.0f} s (setting max_audio_seconds)"
        )
    return info


def _decode_soundfile(path: Path, settings) -> np.ndarray | None:
    """float32 mono at 16 kHz via libsndfile, or None when libsndfile cannot read the format."""
    import soundfile as sf

    info = _header(path, settings)
    if info is None:
        return None
    rate = int(info.samplerate)
    # a header may understate its length: read at most the limit's frames (plus one, to notice)
    max_frames = int(settings.max_audio_seconds * rate) + 1
    try:
        data, rate = sf.read(str(path), frames=max_frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        return None
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate == SAMPLE_RATE or mono.size == 0:
        return np.ascontiguousarray(mono, dtype=np.float32)
    try:
        from scipy.signal import resample_poly
    except ImportError:
        return None  # ffmpeg resamples instead
    g = math.gcd(int(rate), SAMPLE_RATE)
    return resample_poly(mono, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)


def _decode_ffmpeg(path: Path, max_seconds: float) -> np.ndarray:
    """Decode anything ffmpeg reads; stop one second past the limit so a long file costs little."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise MissingDependency(
            f"{path.name} is not a format soundfile reads and the ffmpeg binary is not installed; "
            "install it (Debian/Ubuntu: apt-get install ffmpeg) or convert the file to WAV/FLAC"
        )
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
        "-t", f"{max_seconds + 1:.3f}", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
        "-f", "f32le", "pipe:1",
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, timeout=max(60.0, max_seconds))
    except subprocess.TimeoutExpired:
        raise InputError(f"decoding {path.name} with ffmpeg took too long; is it a valid audio file?") from None
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(
            f"could not decode {path.name} as audio ({_last_line(reason, path)}); "
            "use WAV, FLAC, OGG, MP3 or another format ffmpeg reads"
        )
    return np.frombuffer(result.stdout, dtype="<f4").astype(np.float32)


def _last_line(stderr_lines: list[str], path: Path) -> str:
    """ffmpeg's last complaint, with the file's folder left out (error messages name the input)."""
    line = stderr_lines[-1] if stderr_lines else "ffmpeg failed"
    return line.replace(str(path), path.name).replace(str(path.parent), "")


def load_audio(path: Path | str, settings) -> np.ndarray:
    """Read an audio file as float32 16 kHz mono, enforcing the size and length limits."""
    path = check_media_file(path, "audio", settings.max_audio_bytes, "max_audio_bytes")
    audio = _decode_soundfile(path, settings)
    if audio is None:
        audio = _decode_ffmpeg(path, settings.max_audio_seconds)
    if audio.size == 0:
        raise InputError(f"{path.name} decodes to no audio samples (no audio stream, or zero length)")
    if audio.size / SAMPLE_RATE > settings.max_audio_seconds:
        raise InputError(
            f"{path.name} is longer than the limit of {settings.max_audio_seconds:.0f} s "
            "(setting max_audio_seconds)"
        )
    validate_waveform(audio, SAMPLE_RATE)
    return audio


class SileroVad:
    """Per-frame speech probabilities from a Silero v5/v6 ONNX model.

    Two exports exist: faster-whisper's (inputs ``input`` [frames, 576], ``h``, ``c``; one call
    for all frames) and Silero's own (``input``, ``state``, ``sr``; one call per frame). Both see
    each 512-sample frame with the 64 samples before it.
    """

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        if not ({"input", "h", "c"} <= self.inputs or {"input", "state", "sr"} <= self.inputs):
            raise ModelNotReady(
                f"{path} is not a Silero VAD v5/v6 ONNX model (inputs {sorted(self.inputs)})"
            )

    def speech_probs(self, audio: np.ndarray) -> np.ndarray:
        frames = np.pad(audio, (0, -audio.size % VAD_FRAME)).reshape(-1, VAD_FRAME)
        context = np.zeros_like(frames[:, :VAD_CONTEXT])
        context[1:] = frames[:-1, -VAD_CONTEXT:]
        windows = np.ascontiguousarray(np.concatenate([context, frames], axis=1), dtype=np.float32)
        if "h" in self.inputs:
            state = np.zeros((1, 1, 128), dtype=np.float32)
            probs, _, _ = self.session.run(None, {"input": windows, "h": state, "c": state})
            return np.asarray(probs, dtype=np.float32).reshape(-1)
        state = np.zeros((2, 1, 128), dtype=np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        out = np.empty(len(windows), dtype=np.float32)
        for i, window in enumerate(windows):
            prob, state = self.session.run(None, {"input": window[None], "state": state, "sr": sr})
            out[i] = float(np.asarray(prob).reshape(-1)[0])
        return out


def speech_regions(probs: np.ndarray, threshold: float, n_samples: int) -> list[tuple[int, int]]:
    """Sample ranges that hold speech: frames at or above ``threshold``, gaps under
    ``MAX_GAP_S`` merged, regions with under ``MIN_SPEECH_S`` of speech dropped, ``PAD_S`` added."""
    hits = np.flatnonzero(probs >= threshold)
    if hits.size == 0:
        return []
    max_gap = MAX_GAP_S * SAMPLE_RATE / VAD_FRAME
    breaks = np.flatnonzero(np.diff(hits) - 1 > max_gap)
    pad = int(PAD_S * SAMPLE_RATE)
    regions: list[tuple[int, int]] = []
    for run in np.split(hits, breaks + 1):
        if run.size * VAD_FRAME < MIN_SPEECH_S * SAMPLE_RATE:
            continue
        start = max(0, int(run[0]) * VAD_FRAME - pad)
        end = min(n_samples, (int(run[-1]) + 1) * VAD_FRAME + pad)
        if regions and start <= regions[-1][1]:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, end))
    return regions


class WhisperTranscriber(MediaConverter):
    """Whisper base (openai-whisper, CPU, greedy) with Silero VAD in front."""

    name: ClassVar[str] = "whisper"
    modality: ClassVar[str] = "audio"
    version: ClassVar[str] = "1"
    beam_size: ClassVar[int | None] = None
    """None decodes greedily: a beam of 5 lowered the word error rate on espeak speech but decoded
    markedly slower; bump ``version`` if this changes."""

    def __init__(self, settings):
        super().__init__(settings)
        self._model = None
        self._vad: SileroVad | None = None
        # openai-whisper installs kv-cache hooks on the shared model per call: calls must not overlap.
        self._lock = threading.Lock()

    def unavailable_reason(self) -> str | None:
        from agent.provision.models import model_path

        try:
            model_path(self.settings, "whisper")
            model_path(self.settings, "vad")
        except ModelNotReady as exc:
            return str(exc)
        return None

    def _load(self) -> None:
        """Load both models on first use (a few seconds), never at import or registration."""
        if self._model is not None:
            return
        from agent.core.config import apply_thread_settings
        from agent.provision.models import model_path

        apply_thread_settings(self.settings)  # before torch loads OpenMP, which reads the env once
        import whisper

        vad_path = model_path(self.settings, "vad")
        if not isinstance(vad_path, Path) or not vad_path.is_file():
            raise ModelNotReady(f"the vad role needs a local Silero .onnx file, got {vad_path}")
        whisper_path = model_path(self.settings, "whisper")
        if isinstance(whisper_path, Path) and not whisper_path.is_file():
            raise ModelNotReady(
                f"the whisper role needs an openai-whisper checkpoint file, got {whisper_path}; "
                "a CTranslate2 folder converts with agent.provision.whisper_ct2.convert_ct2_whisper"
            )
        self._vad = SileroVad(vad_path, self.settings.threads)
        self._model = whisper.load_model(str(whisper_path), device="cpu")

    def convert(self, path: Path) -> Conversion:
        return self.transcribe(path)

    def transcribe(self, audio: Path | str | np.ndarray, sample_rate: int = SAMPLE_RATE) -> Conversion:
        """Transcript of a file or a float32 16 kHz mono array; empty with no_speech=True if none."""
        if isinstance(audio, np.ndarray):
            validate_waveform(audio, sample_rate)
            if audio.size / SAMPLE_RATE > self.settings.max_audio_seconds:
                raise InputError(
                    f"audio is {audio.size / SAMPLE_RATE:.0f} s long; the limit is "
                    f"{self.settings.max_audio_seconds:.0f} s (setting max_audio_seconds)"
                )
        else:
            audio = load_audio(audio, self.settings)
        with self._lock:
            self._load()
            probs = self._vad.speech_probs(audio)
            regions = speech_regions(probs, self.settings.vad_threshold, audio.size)
            text, language = "", None
            if regions:
                speech = np.concatenate([audio[a:b] for a, b in regions])
                result = self._model.transcribe(
                    speech, temperature=0.0, beam_size=self.beam_size, fp16=False,
                    condition_on_previous_text=False,
                    no_speech_threshold=self.settings.no_speech_threshold, verbose=None,
                )
                kept = [
                    seg["text"].strip() for seg in result["segments"]
                    if seg["no_speech_prob"] <= self.settings.no_speech_threshold
                    and seg["compression_ratio"] <= MAX_COMPRESSION_RATIO
                ]
                text = " ".join(t for t in kept if t)
                language = result.get("language") if text else None
        details = {
            "text": text,
            "language": language,
            "no_speech": not text,
            "duration_s": round(audio.size / SAMPLE_RATE, 3),
            "speech_s": round(sum(b - a for a, b in regions) / SAMPLE_RATE, 3),
        }
        return Conversion(card_fields={"transcript": text}, details=details)


@hookimpl
def register_converters(register):
    register(WhisperTranscriber)
