"""CTranslate2 -> openai-whisper conversion.

The unit tests write tiny CTranslate2 files with their own writer (following CTranslate2's
``model_spec.py`` serialisation), from a randomly initialised tiny openai-whisper model, and check
that the converted checkpoint reproduces that model's outputs. The integration test checks the
provisioned checkpoint.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper

from agent.core.errors import ModelNotReady
from agent.provision.whisper_ct2 import (
    Ct2FormatError,
    convert_ct2_whisper,
    read_ct2_model,
)

TINY = dict(
    n_mels=4, n_audio_ctx=6, n_audio_state=8, n_audio_head=2, n_audio_layer=2,
    n_vocab=11, n_text_ctx=5, n_text_state=8, n_text_head=2, n_text_layer=2,
)
TYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}


class BF16:
    """Marks a float32 array to be stored as bfloat16 (its top 16 bits)."""

    def __init__(self, value: np.ndarray):
        self.value = value.astype(np.float32)


def write_ct2(path: Path, variables: dict, aliases: dict[str, str] | None = None,
              version: int = 6, spec: str = "WhisperSpec", revision: int = 3) -> Path:
    """A CTranslate2 model.bin, written the way ``ModelSpec._serialize`` writes it."""
    with open(path, "wb") as f:
        def string(text: str) -> None:
            raw = text.encode() + b"\0"
            f.write(struct.pack("<H", len(raw)) + raw)

        f.write(struct.pack("<I", version))
        string(spec)
        f.write(struct.pack("<II", revision, len(variables)))
        for name, value in sorted(variables.items()):
            if isinstance(value, BF16):
                dtype, shape = "bfloat16", value.value.shape
                raw = (value.value.view(np.uint32) >> 16).astype("<u2").tobytes()
            else:
                value = np.asarray(value)
                raw = value.astype(value.dtype.newbyteorder("<")).tobytes()
                dtype, shape = value.dtype.name, value.shape
            string(name)
            f.write(struct.pack("<B", len(shape)) + b"".join(struct.pack("<I", d) for d in shape))
            f.write(struct.pack("<BI", TYPE_IDS[dtype], len(raw)) + raw)
        f.write(struct.pack("<I", len(aliases or {})))
        for alias, target in (aliases or {}).items():
            string(alias)
            string(target)
    return path


def export_ct2(model, key_bias_seed: int | None = 0) -> dict[str, np.ndarray]:
    """CTranslate2 WhisperSpec variables for an openai-whisper model (q/k/v fused as CT2 does).

    CTranslate2 stores a key bias (zeros from Transformers); a random one here checks that
    dropping it leaves the outputs unchanged.
    """
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    rng = np.random.default_rng(key_bias_seed)
    out: dict[str, np.ndarray] = {}

    def key_bias(n: int) -> np.ndarray:
        return rng.normal(size=n).astype(np.float32) if key_bias_seed is not None else np.zeros(n, np.float32)

    def lin(dst, src):
        out[f"{dst}/weight"], out[f"{dst}/bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def ln(dst, src):
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def fused(dst, src, parts):
        out[f"{dst}/weight"] = np.concatenate([sd[f"{src}.{p}.weight"] for p in parts])
        out[f"{dst}/bias"] = np.concatenate(
            [sd[f"{src}.{p}.bias"] if p != "key" else key_bias(len(sd[f"{src}.key.weight"])) for p in parts]
        )

    lin("encoder/conv1", "encoder.conv1")
    lin("encoder/conv2", "encoder.conv2")
    out["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    ln("encoder/layer_norm", "encoder.ln_post")
    out["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    out["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    ln("decoder/layer_norm", "decoder.ln")
    for stack in ("encoder", "decoder"):
        for i in range(TINY[f"n_{'audio' if stack == 'encoder' else 'text'}_layer"]):
            s, d = f"{stack}.blocks.{i}", f"{stack}/layer_{i}"
            ln(f"{d}/self_attention/layer_norm", f"{s}.attn_ln")
            fused(f"{d}/self_attention/linear_0", f"{s}.attn", ("query", "key", "value"))
            lin(f"{d}/self_attention/linear_1", f"{s}.attn.out")
            if stack == "decoder":
                ln(f"{d}/attention/layer_norm", f"{s}.cross_attn_ln")
                lin(f"{d}/attention/linear_0", f"{s}.cross_attn.query")
                fused(f"{d}/attention/linear_1", f"{s}.cross_attn", ("key", "value"))
                lin(f"{d}/attention/linear_2", f"{s}.cross_attn.out")
            ln(f"{d}/ffn/layer_norm", f"{s}.mlp_ln")
            lin(f"{d}/ffn/linear_0", f"{s}.mlp.0")
            lin(f"{d}/ffn/linear_1", f"{s}.mlp.2")
    out["encoder/num_heads"] = np.int16(TINY["n_audio_head"])
    out["decoder/num_heads"] = np.int16(TINY["n_text_head"])
    out.update({
        "decoder/activation": np.int8(3), "decoder/alibi": np.int8(0), "decoder/pre_norm": np.int8(1),
        "decoder/scale_embeddings": np.int8(0), "decoder/start_from_zero_embedding": np.int8(0),
        "decoder/alignment_heads": np.int16(1), "decoder/alignment_layer": np.int16(-1),
    })
    return out


TIED = {"decoder/projection/weight": "decoder/embeddings/weight"}


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**TINY)).eval()
    with torch.no_grad():
        # openai-whisper leaves the decoder's positional embedding as torch.empty (a checkpoint
        # fills it); LayerNorm starts at 1/0, so randomise both so a gamma/beta swap would show.
        for name, p in model.named_parameters():
            if "ln" in name or name == "decoder.positional_embedding":
                p.normal_()
    return model


def _outputs(model) -> torch.Tensor:
    torch.manual_seed(1)
    mel = torch.randn(1, TINY["n_mels"], 2 * TINY["n_audio_ctx"])
    tokens = torch.tensor([[1, 4, 2, 7]])
    with torch.no_grad():
        return model.logits(tokens, model.embed_audio(mel))


def _convert(tmp_path: Path, variables: dict, **kwargs) -> Path:
    src = tmp_path / "ct2"
    src.mkdir(exist_ok=True)
    write_ct2(src / "model.bin", variables, **{"aliases": TIED, **kwargs})
    out = tmp_path / "out" / "tiny.pt"
    convert_ct2_whisper(src, out)
    return out


def test_round_trip_reproduces_the_model(tiny_model, tmp_path):
    out = _convert(tmp_path, export_ct2(tiny_model))
    checkpoint = torch.load(out, weights_only=True)  # plain tensors and ints only
    assert checkpoint["dims"] == TINY
    loaded = whisper.load_model(str(out), device="cpu")  # strict load_state_dict
    assert "encoder.blocks.0.attn.key.bias" not in checkpoint["model_state_dict"]
    expected = _outputs(tiny_model)
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(_outputs(loaded.float()), expected, rtol=1e-5, atol=1e-5)


def test_parser_reads_every_dtype_and_alias(tmp_path):
    int8 = np.array([[127, -64], [10, 0]], dtype=np.int8)
    path = write_ct2(tmp_path / "model.bin", {
        "a": np.array([1.5, -2.0], dtype=np.float32), "b": np.array([0.5], dtype=np.float16),
        "c": int8, "d": np.int16(-3), "e": np.array([7], dtype=np.int32), "f": BF16(np.array([1.25, -3.0])),
    }, aliases={"g": "a"})
    spec, revision, v = read_ct2_model(path)
    assert (spec, revision) == ("WhisperSpec", 3)
    assert v["a"].tolist() == [1.5, -2.0] and v["b"].dtype == np.float16 and v["b"].tolist() == [0.5]
    assert v["c"].tolist() == int8.tolist() and int(v["d"]) == -3 and v["e"].tolist() == [7]
    assert v["f"].tolist() == [1.25, -3.0] and v["g"] is v["a"]


def test_dequantises_int8_and_keeps_half_precision(tiny_model, tmp_path):
    variables = export_ct2(tiny_model)
    name = "decoder/layer_0/ffn/linear_0/weight"
    w = variables[name]
    scale = (127.0 / np.abs(w).max(axis=1)).astype(np.float32)  # CTranslate2's per-row int8 scheme
    variables[name] = np.rint(w * scale[:, None]).astype(np.int8)
    variables[name + "_scale"] = scale
    variables["encoder/conv2/weight"] = variables["encoder/conv2/weight"].astype(np.float16)
    variables["decoder/layer_norm/gamma"] = BF16(variables["decoder/layer_norm/gamma"])
    sd = torch.load(_convert(tmp_path, variables), weights_only=True)["model_state_dict"]
    dequantised = sd["decoder.blocks.0.mlp.0.weight"].numpy()
    np.testing.assert_allclose(dequantised, variables[name] / scale[:, None], rtol=1e-6)
    assert np.abs(dequantised - w).max() <= np.abs(w).max() / 127  # within one quantisation step
    assert sd["encoder.conv2.weight"].dtype == torch.float16
    gamma = tiny_model.state_dict()["decoder.ln.weight"].numpy()
    expected_bf16 = (gamma.view(np.uint32) >> 16 << 16).view(np.float32)  # truncated to bf16
    np.testing.assert_array_equal(sd["decoder.ln.weight"].numpy(), expected_bf16)


def _untie(v, kw):
    kw["aliases"] = {}
    v["decoder/projection/weight"] = np.ones((TINY["n_vocab"], TINY["n_text_state"]), np.float32)


BROKEN = {
    "old binary version": (lambda v, kw: kw.update(version=3), "binary version 3"),
    "other spec": (lambda v, kw: kw.update(spec="TransformerSpec"), "not WhisperSpec"),
    "unknown variable": (
        lambda v, kw: v.update({"encoder/extra/weight": np.zeros(2, np.float32)}),
        "no openai-whisper counterpart",
    ),
    "other activation": (lambda v, kw: v.update({"decoder/activation": np.int8(1)}), "decoder/activation"),
    "missing variable": (lambda v, kw: v.pop("decoder/layer_1/ffn/linear_1/bias"), "linear_1/bias"),
    "untied projection": (_untie, "ties"),
    "int8 without scale": (
        lambda v, kw: v.update({"decoder/layer_0/ffn/linear_0/weight": np.zeros((32, 8), np.int8)}),
        "without .*_scale",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_rejects_what_it_cannot_map(tiny_model, tmp_path, case):
    change, message = BROKEN[case]
    variables, kwargs = export_ct2(tiny_model), {}
    change(variables, kwargs)
    with pytest.raises(Ct2FormatError, match=message):
        _convert(tmp_path, variables, **kwargs)
    assert not (tmp_path / "out" / "tiny.pt").exists()


def test_truncated_file_is_reported(tiny_model, tmp_path):
    src = tmp_path / "ct2"
    src.mkdir()
    data = write_ct2(src / "model.bin", export_ct2(tiny_model), aliases=TIED).read_bytes()
    (src / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(Ct2FormatError, match="truncated"):
        convert_ct2_whisper(src, tmp_path / "x.pt")
    with pytest.raises(Ct2FormatError, match="does not exist"):
        convert_ct2_whisper(tmp_path / "missing", tmp_path / "x.pt")
    assert issubclass(Ct2FormatError, ModelNotReady)


@pytest.mark.integration
def test_provisioned_checkpoint_loads_safely():
    from agent.core.config import load_settings
    from agent.provision.models import model_path

    try:
        path = model_path(load_settings(), "whisper")
    except ModelNotReady as exc:
        pytest.fail(f"integration test needs the 'whisper' model: {exc}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"dims", "model_state_dict"}
    assert all(isinstance(t, torch.Tensor) for t in checkpoint["model_state_dict"].values())
    model = whisper.load_model(str(path), device="cpu")  # strict state-dict load
    assert model.is_multilingual and model.dims.n_audio_layer == 6  # Whisper base
