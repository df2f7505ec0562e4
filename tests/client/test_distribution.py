"""The bot client as its own distribution: built alone from client/, installed alone in a fresh
venv next to PyPI's ``watchdog`` (the filesystem-events library), and working against a real
redis-server; and the daemon's distribution still carrying the same package.

Needs the package registry (pip builds with an isolated setuptools and installs ``redis`` and
``watchdog``), as ``.ci/bootstrap`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.support.store import ACCOUNT, make_view, position_key
from watchdog.store.publisher import RedisPublisher

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Runs inside the fresh venv: only the client and PyPI's watchdog are installed there.
PROBE = r"""
import json, sys
import poswatch, watchdog, watchdog.observers
from importlib import metadata
from poswatch import Reason, WatchdogClient

assert "watchdog.events" in sys.modules or hasattr(watchdog, "observers"), "not PyPI's watchdog"
wd = WatchdogClient.from_url(sys.argv[1], sys.argv[2], socket_timeout_s=2.0)
with wd.guard_stop_update("BTC/USDT:USDT", "BOTH", holder="fresh-venv") as guard:
    confirmed = guard.confirm()
print(json.dumps({
    "poswatch": poswatch.__file__, "version": poswatch.__version__,
    "requires": metadata.requires("position-watchdog-client"),
    "daemon_modules": sorted(m for m in sys.modules if m.startswith(("watchdog.core", "watchdog.store"))),
    "begun": guard.begun.reason, "lease": guard.lease, "confirmed": confirmed.reason,
    "reason_is_enum": confirmed.reason is Reason.OK,
    "ended": [guard.ended.released, guard.ended.reason, guard.ended.window_ms],
}))
"""


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    # Without PYTHONPATH: this checkout's own `watchdog` must not leak into the fresh venv.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)
    assert done.returncode == 0, (f"{args}: exit {done.returncode}\n"
                                  f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def build_wheel(source: Path, out: Path) -> Path:
    """A wheel of ``source`` (copied first: a build leaves build/ and *.egg-info behind)."""
    tree = out / "src"
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".venv", ".git", ".hypothesis", ".pytest_cache"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, tree)
    [wheel] = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client's wheel, built once for this module's tests (they only read it)."""
    return build_wheel(REPO / "client", tmp_path_factory.mktemp("client-wheel"))


def test_the_client_wheel_holds_the_client_only(client_wheel: Path) -> None:
    names = zipfile.ZipFile(client_wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("position_watchdog_client-")} == {"poswatch"}
    for script in ("check", "begin", "confirm", "end", "_prelude", "heartbeat"):
        assert f"poswatch/lua/{script}.lua" in names
    assert "poswatch/py.typed" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(client_wheel).read(metadata).decode()
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    assert requires == ["Requires-Dist: redis<9,>=5"]


def test_the_daemon_wheel_carries_the_same_client_package(tmp_path: Path) -> None:
    names = zipfile.ZipFile(build_wheel(REPO, tmp_path)).namelist()
    assert "watchdog/cli.py" in names
    assert "poswatch/lua/begin.lua" in names
    assert "poswatch/keys.py" in names
    assert "poswatch/py.typed" in names
    assert not any(n.startswith(("client/", "tests/")) for n in names)


async def test_installed_alone_next_to_pypis_watchdog_it_runs_the_veto_protocol(
        tmp_path: Path, client_wheel: Path, redis_url: str, publisher: RedisPublisher) -> None:
    wheel = client_wheel
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel, "watchdog")
    listed = json.loads(run(python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"))
    installed = {entry["name"].lower() for entry in listed}
    assert {"position-watchdog-client", "redis", "watchdog"} <= installed
    assert "binance-position-watchdog" not in installed
    assert not {"httpx", "websockets", "click", "loguru", "aiohttp"} & installed

    await publisher.heartbeat({"stream": "live"})
    fresh_ms = int(time.time() * 1000)
    await publisher.publish(make_view(position_key("BTCUSDT"), version=1, verified_ms=fresh_ms))
    answer = json.loads(run(python, "-c", PROBE, redis_url, ACCOUNT, cwd=tmp_path, timeout=60))
    assert Path(answer["poswatch"]).is_relative_to(venv)
    assert answer["requires"] == ["redis<9,>=5"]
    assert answer["daemon_modules"] == []
    assert (answer["begun"], answer["confirmed"], answer["reason_is_enum"]) == ("ok", "ok", True)
    assert answer["lease"] > 0
    released, reason, window_ms = answer["ended"]
    assert (released, reason) == (True, "ok")
    assert window_ms >= 0

    # Removing PyPI's watchdog again leaves the client whole (the clash the daemon's name has).
    run(python, "-m", "pip", "uninstall", "-y", "-q", "watchdog")
    run(python, "-c", "import poswatch.client, poswatch.scripts; poswatch.scripts.script_source('begin')")


def test_the_daemon_venv_still_answers_its_version() -> None:
    exe = Path(sys.executable).parent / "position-watchdog"
    if not exe.exists():
        pytest.skip(f"no position-watchdog next to {sys.executable}: the daemon is not installed here")
    from watchdog import __version__

    assert run(exe, "--version").strip().endswith(__version__)
