"""What a module imports, read from its source (the layering tests of core/ and binance/protocol/)."""

from __future__ import annotations

import ast
from pathlib import Path


def imports_of(path: Path) -> list[str]:
    """Every module ``path`` imports (``import x`` and ``from x import …``); relative imports fail."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            names.append(node.module or "")
    return names
