"""The README's two commands and CI's entry point exist, parse, and refuse a wrong job early."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", [".ci/bootstrap", ".ci/run"])
def test_script_is_executable_bash_that_parses(script: str) -> None:
    path = REPO / script
    assert os.access(path, os.X_OK)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_bootstrap_rejects_an_unknown_job_before_installing_anything(tmp_path: Path) -> None:
    env = {**os.environ, "WATCHDOG_VENV": str(tmp_path / "venv")}
    done = subprocess.run(["bash", str(REPO / ".ci/bootstrap"), "bogus"], capture_output=True, text=True,
                          timeout=30, check=False, env=env)
    assert done.returncode == 2
    assert "usage: bash .ci/bootstrap demo|test|install" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_readme_opens_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["bash .ci/bootstrap demo", "bash .ci/bootstrap test"]


def test_bootstrap_installs_prometheus_for_tests_only_and_only_when_missing() -> None:
    """promtool and prometheus must be there in CI (the alert and scrape tests skip without them)."""
    script = (REPO / ".ci/bootstrap").read_text(encoding="utf-8")
    guard = re.search(r'if \[ "\$job" = test \] && \{ ! command -v prometheus .*! command -v promtool'
                      r'[^\n]*\n\s+apt_install prometheus\n', script)
    assert guard is not None


def test_bootstrap_runs_the_suite_on_every_core_with_xdist_from_the_test_extras() -> None:
    """The README's test command runs pytest-xdist (-n auto), and CI installs it (test extras)."""
    script = (REPO / ".ci/bootstrap").read_text(encoding="utf-8")
    assert re.search(r'^\s+test\) exec "\$venv/bin/python" -m pytest -n auto "\$@" ;;$', script, re.MULTILINE)
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg", encoding="utf-8")
    extras = [line.split("#")[0].strip() for line in setup["options.extras_require"]["test"].splitlines()]
    assert any(re.fullmatch(r"pytest-xdist>=[\d.]+", extra) for extra in extras), extras
