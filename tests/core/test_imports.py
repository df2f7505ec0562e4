"""The core is sans-I/O: its modules import only an allowlist of the standard library."""

from __future__ import annotations

from pathlib import Path

import pytest

import watchdog.core
from tests.support.imports import imports_of

CORE_DIR = Path(watchdog.core.__file__).parent
# Pure, deterministic stdlib modules only: no asyncio, time, os, logging, socket, random, ...
ALLOWED = {"__future__", "dataclasses", "decimal", "enum", "typing", "collections", "itertools",
           "functools", "operator", "abc", "math", "collections.abc", "types", "heapq"}

CORE_FILES = sorted(CORE_DIR.glob("*.py"))


def test_core_files_found() -> None:
    assert {"book.py", "freshness.py", "model.py", "events.py", "effects.py"} <= {
        p.name for p in CORE_FILES}


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_imports_only_allowlisted_stdlib(path: Path) -> None:
    for name in imports_of(path):
        if name == "watchdog.core" or name.startswith("watchdog.core."):
            continue
        assert name in ALLOWED, f"{path.name} imports {name!r}, outside the core allowlist"
