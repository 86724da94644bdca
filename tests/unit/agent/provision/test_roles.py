"""The model-role table: every role settings know, every wheel and member pinned by a sha256."""

import re

from agent.core.config import MODEL_ROLES
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
