"""poswatch.fields: every hash field name a reader uses is one the Lua scripts write."""

from __future__ import annotations

from pathlib import Path

import pytest

import poswatch
from poswatch.fields import LeaseField, PositionField

LUA = "\n".join(p.read_text() for p in (Path(poswatch.__file__).parent / "lua").glob("*.lua"))


@pytest.mark.parametrize("name", [*PositionField, *(f for f in LeaseField if f is not LeaseField.FENCE)],
                         ids=str)
def test_the_scripts_write_the_field(name: str) -> None:
    assert f"'{name}'" in LUA, name
