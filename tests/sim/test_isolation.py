"""The simulator must not share the client's code: no ``watchdog.binance`` import."""

from __future__ import annotations

import ast
from pathlib import Path

import watchdog.sim

FORBIDDEN = ("watchdog.binance", "watchdog.store", "watchdog.runtime")


def test_sim_imports_no_client_code() -> None:
    root = Path(watchdog.sim.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert offenders == []
