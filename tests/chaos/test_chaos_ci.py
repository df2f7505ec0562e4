"""The chaos suite's CI subset (bench/chaos.py --subset ci): the real daemon, simulator and
redis-server through the scenarios that pass on main, judged by the five invariants from outside
(docs/RELIABILITY.md, "Chaos suite"). About a minute alone; the deadline below is only a guard
against a hang on a loaded machine, not a timing assertion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_chaos_ci_subset_passes() -> None:
    paths = [str(ROOT), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    # Its own session: on a hang the whole group (simulator, daemon, redis-server) is stopped.
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "chaos.py"), "--subset", "ci", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=840)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate(timeout=30)
    assert stdout.strip(), f"no report (exit {proc.returncode}): {stderr[-2000:]}"
    report = json.loads(stdout.strip().splitlines()[-1])
    failed = {s["name"]: s["failures"] for s in report["scenarios"] if not s["ok"]}
    for s in report["scenarios"]:
        print(f"{s['name']:<36} {'PASS' if s['ok'] else 'FAIL'}  {s['figure']}  {s['seconds']}s")
    assert not failed, json.dumps(failed, indent=1)
    assert proc.returncode == 0
    assert report["passed"] >= 10
