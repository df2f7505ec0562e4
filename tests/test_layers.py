"""Imports run one way: the leaves (clock, cancel) need nothing of ours, the adapters and the store
never reach up into the daemon, and the daemon never into the operator commands.

The core's own allowlist is tests/core/test_imports.py; the simulator's is tests/sim/test_isolation.py.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import watchdog

ROOT = Path(watchdog.__file__).parent
LEAVES = ("clock.py", "cancel.py")
ABOVE_THE_ADAPTERS = ("watchdog.runtime", "watchdog.ops", "watchdog.cli", "watchdog.demo")
# package -> the packages it must not import
FORBIDDEN = {
    "binance": ABOVE_THE_ADAPTERS,
    "store": ABOVE_THE_ADAPTERS,
    "core": ABOVE_THE_ADAPTERS,
    "runtime": ("watchdog.ops", "watchdog.cli", "watchdog.demo"),
}


def imported(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def below(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("leaf", LEAVES)
def test_the_leaves_import_the_standard_library_only(leaf: str) -> None:
    outside = [n for n in imported(ROOT / leaf) if n.split(".")[0] not in sys.stdlib_module_names]
    assert outside == [], f"{leaf} imports {outside}: a leaf every layer imports must import none"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_back_up(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path in files for name in imported(path)
                 if below(name, FORBIDDEN[package])]
    assert offenders == []
