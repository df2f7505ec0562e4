"""The shipped unit: systemd accepts it, and it stays hardened (exposure ≤ 1.5)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "position-watchdog.service"
DROPIN = ROOT / "systemd" / "bot-dropin.conf"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
MAX_EXPOSURE = 1.5


def settings(path: Path) -> dict[str, list[str]]:
    """Key → every value it is given (systemd keys may repeat), comments and sections dropped."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)


def test_unit_carries_the_service_contract() -> None:
    unit = settings(UNIT)
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["77 78"]
    assert unit["WatchdogSec"]
    assert "redis-server.service" in unit["After"][0]
    assert "redis-server.service" in unit["Wants"][0]
    assert "--config /etc/position-watchdog/config.toml" in unit["ExecStart"][0]
    credentials = {value.split(":", 1)[0] for value in unit["LoadCredential"]}
    assert credentials == {"binance_api_key", "binance_api_secret"}


def test_bot_dropin_wants_and_orders_after_the_watchdog() -> None:
    dropin = settings(DROPIN)
    assert dropin["Wants"] == ["position-watchdog.service"]
    assert dropin["After"] == ["position-watchdog.service"]
    assert "Requires" not in dropin  # a stopped watchdog must not take the bot down with it


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify insists that ExecStart's binary exists: point it at a stand-in with the same arguments.
    binary = tmp_path / "position-watchdog"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    text = UNIT.read_text().replace("/opt/position-watchdog/bin/position-watchdog", str(binary))
    assert str(binary) in text
    (tmp_path / UNIT.name).write_text(text)
    result = analyze("verify", UNIT.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_analyze
def test_systemd_analyze_verify_as_shipped_only_misses_the_installed_binary() -> None:
    result = analyze("verify", UNIT.name, cwd=UNIT.parent)
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    assert all("/opt/position-watchdog/bin/position-watchdog is not executable" in line
               for line in problems), result.stderr


@needs_analyze
def test_security_exposure_is_at_most_1_5() -> None:
    result = analyze("security", "--offline=true", UNIT.name, cwd=UNIT.parent)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, match.group(0)


# ---------------------------------------------------------------- the template (one per config)

TEMPLATE = ROOT / "systemd" / "position-watchdog@.service"
_PER_INSTANCE = ("Description", "ExecStart", "LoadCredential")


def test_template_is_the_unit_with_per_instance_paths_only() -> None:
    unit, template = settings(UNIT), settings(TEMPLATE)
    assert {k: v for k, v in template.items() if k not in _PER_INSTANCE} == \
        {k: v for k, v in unit.items() if k not in _PER_INSTANCE}  # same contract and hardening
    assert template["ExecStart"] == [unit["ExecStart"][0].replace("config.toml", "%i.toml")]
    assert sorted(template["LoadCredential"]) == [
        "binance_api_key:/etc/position-watchdog/credentials/%i/binance_api_key",
        "binance_api_secret:/etc/position-watchdog/credentials/%i/binance_api_secret"]


def _instance(tmp_path: Path) -> str:
    """The template as an instance unit systemd can verify (its binary replaced by a stand-in)."""
    binary = tmp_path / "position-watchdog"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    text = TEMPLATE.read_text().replace("/opt/position-watchdog/bin/position-watchdog", str(binary))
    (tmp_path / "position-watchdog@.service").write_text(text)
    return "position-watchdog@acct1.service"


@needs_analyze
def test_systemd_analyze_verify_accepts_an_instance_of_the_template(tmp_path: Path) -> None:
    result = analyze("verify", str(tmp_path / _instance(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_analyze
def test_template_security_exposure_is_the_units(tmp_path: Path) -> None:
    name = _instance(tmp_path)
    exposures = []
    for cwd, unit in ((UNIT.parent, UNIT.name), (tmp_path, str(tmp_path / name))):
        result = analyze("security", "--offline=true", unit, cwd=cwd)
        match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
        assert match, result.stdout[-2000:] + result.stderr
        exposures.append(float(match.group(1)))
    assert exposures[1] == exposures[0] <= MAX_EXPOSURE, exposures
