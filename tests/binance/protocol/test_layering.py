"""``watchdog/binance/protocol/`` is Binance without I/O: its modules import an allowlist of the
standard library, the core, the errors and the configuration types, and nothing of the shells
(stream, rest, poller, connection, market_stream, snapshots, retry) or any network, Redis or
event-loop library, not even indirectly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import watchdog.binance.protocol
from tests.support.imports import imports_of

PROTOCOL_DIR = Path(watchdog.binance.protocol.__file__).parent
PROTOCOL_FILES = sorted(PROTOCOL_DIR.glob("*.py"))
# Deterministic standard library only. ``random`` is there for the type of an injected
# ``random.Random`` (reconnect.Backoff); json/re/hmac/hashlib/urllib.parse parse and sign text;
# ``operator``'s getters read a positionRisk answer column by column (wire_rest).
STDLIB = {"__future__", "dataclasses", "decimal", "enum", "typing", "collections",
          "collections.abc", "math", "json", "re", "hmac", "hashlib", "urllib.parse", "random",
          "operator"}
WATCHDOG = ("watchdog.binance.protocol", "watchdog.core", "watchdog.errors", "watchdog.config")
# What must never be loaded by importing the protocol (checked in a fresh interpreter).
IO_LIBRARIES = {"websockets", "httpx", "httpcore", "redis", "hiredis", "asyncio", "socket",
                "ssl", "selectors", "loguru", "tenacity", "anyio"}

def test_protocol_files_found() -> None:
    assert {"wire.py", "wirefields.py", "wire_rest.py", "signing.py", "classify.py",
            "reconnect.py", "schedule.py", "budget.py", "probation.py", "canary.py",
            "weights.py", "session.py"} <= {p.name for p in PROTOCOL_FILES}


@pytest.mark.parametrize("path", PROTOCOL_FILES, ids=lambda p: p.name)
def test_protocol_imports_only_the_allowlist(path: Path) -> None:
    for name in imports_of(path):
        if name.startswith("watchdog"):
            assert name.startswith(WATCHDOG), f"{path.name} imports {name!r}: a shell or a layer " \
                                              f"above the protocol"
        else:
            assert name in STDLIB, f"{path.name} imports {name!r}, outside the protocol allowlist"


def test_importing_the_protocol_loads_no_io_library() -> None:
    modules = [f"watchdog.binance.protocol.{p.stem}" for p in PROTOCOL_FILES
               if p.stem != "__init__"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(' '.join(sorted(m for m in sys.modules if m.startswith('watchdog'))))\n"
            + f"print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {IO_LIBRARIES!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=60).stdout.splitlines()
    loaded, io = out[0].split(), out[1].split() if len(out) > 1 else []
    assert not io, f"importing the protocol loads {io}"
    shells = [m for m in loaded if m.startswith("watchdog.") and not m.startswith(WATCHDOG)
              and m != "watchdog.binance"]
    assert not shells, f"importing the protocol loads {shells}"
