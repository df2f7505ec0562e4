"""The core is sans-I/O: its modules import only an allowlist of the standard library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import watchdog.core

CORE_DIR = Path(watchdog.core.__file__).parent
# Pure, deterministic stdlib modules only: no asyncio, time, os, logging, socket, random, ...
ALLOWED = {"__future__", "dataclasses", "decimal", "enum", "typing", "collections", "itertools",
           "functools", "operator", "abc", "math", "collections.abc", "types", "heapq"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            names.append(node.module or "")
    return names


CORE_FILES = sorted(CORE_DIR.glob("*.py"))


def test_core_files_found() -> None:
    assert {"book.py", "freshness.py", "model.py", "events.py", "effects.py"} <= {
        p.name for p in CORE_FILES}


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_imports_only_allowlisted_stdlib(path: Path) -> None:
    for name in _imports(path):
        if name == "watchdog.core" or name.startswith("watchdog.core."):
            continue
        assert name in ALLOWED, f"{path.name} imports {name!r}, outside the core allowlist"
