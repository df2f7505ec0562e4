"""The command line: `config check`, `python -m watchdog`, and the declared console script."""

from __future__ import annotations

import configparser
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from watchdog.cli import cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"


def test_config_check_accepts_the_example() -> None:
    result = CliRunner().invoke(cli, ["config", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{EXAMPLE}: ok"


def test_config_check_names_a_misspelt_key_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "\npoll_interval_s = " in text
    bad.write_text(text.replace("\npoll_interval_s = ", "\npoll_intervall_s = "), encoding="utf-8")
    result = CliRunner().invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (f"{bad}: [binance] poll_intervall_s: unknown key; "
                             "did you mean 'poll_interval_s'?\n")


def test_config_check_reports_a_missing_file_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "check", str(tmp_path / "absent.toml")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1


def test_python_dash_m_watchdog_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "watchdog", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "config" in done.stdout
    done = subprocess.run([sys.executable, "-m", "watchdog", "config", "check", "config.example.toml"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "config.example.toml: ok\n"), done.stderr


def test_console_script_is_declared_and_resolves() -> None:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg", encoding="utf-8")
    assert setup["metadata"]["name"] == "binance-position-watchdog"
    scripts = dict(line.split("=", 1) for line in setup["options.entry_points"]["console_scripts"].split("\n")
                   if line.strip())
    target = {k.strip(): v.strip() for k, v in scripts.items()}["position-watchdog"]
    module, _, attr = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_config_check_on_a_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "check", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{tmp_path}: cannot read the file:")
    assert result.stderr.count("\n") == 1


def test_config_check_imports_no_network_libraries() -> None:
    probe = ("import sys; from click.testing import CliRunner; from watchdog.cli import cli; "
             "r = CliRunner().invoke(cli, ['config', 'check', 'config.example.toml']); "
             "heavy = sorted({'aiohttp', 'redis', 'httpx', 'websockets', 'ccxt'} & set(sys.modules)); "
             "print(r.exit_code, heavy)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "0 []", done.stderr


BROKEN = """[binance]
poll_intervall_s = 1.0
recv_window_ms = 90000
[redis]
url = "localhost:6379"
[veto]
max_age_ms = 9000
[nonsense]
x = 1
"""


def test_config_check_reports_every_error_at_once(tmp_path: Path) -> None:
    """One run of ``config check`` lists every problem, one line each (exit code unchanged)."""
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN, encoding="utf-8")
    result = CliRunner().invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines == [
        f"{bad}: [nonsense]: unknown section",
        f"{bad}: [binance] poll_intervall_s: unknown key; did you mean 'poll_interval_s'?",
        f"{bad}: [binance] recv_window_ms: must be <= 60000, got 90000 "
        "(Binance rejects recvWindow above 60000)",
        f"{bad}: [redis] url: expected a redis:// or rediss:// or unix:// URL, got 'localhost:6379'",
        f"{bad}: [veto] max_age_ms: must be <= [core] max_age_ms (5000): the veto cannot trust "
        "what the core already calls unknown; got 9000",
    ], result.stderr


def test_run_reports_every_config_error_and_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN, encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", "--config", str(bad)])
    assert result.exit_code == 78
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 5, result.stderr
    assert all("bad configuration" in line for line in errors)


MULTI = """
[binance]
weight_budget_pct = 30
[[accounts]]
name = "a"
[[accounts]]
name = "b"
"""


@pytest.mark.parametrize("args", [["status"], ["events"], ["check", "BTCUSDT"]])
def test_a_reading_command_refuses_a_file_of_several_accounts(tmp_path: Path,
                                                              args: list[str]) -> None:
    """It would otherwise read [redis] account's default, an account nobody runs."""
    config = tmp_path / "multi.toml"
    config.write_text(MULTI, encoding="utf-8")
    result = CliRunner().invoke(cli, [*args, "--config", str(config)])
    assert result.exit_code in (2, 78), result.output  # check's config error is its 2
    assert "reads one" in result.stderr


def test_run_names_the_account_whose_credentials_are_missing_and_exits_78(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "multi.toml"
    config.write_text(MULTI, encoding="utf-8")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("BINANCE_API_KEY_A", "k" * 64)
    monkeypatch.setenv("BINANCE_API_SECRET_A", "s" * 64)
    result = CliRunner().invoke(cli, ["run", "--config", str(config)])
    assert result.exit_code == 78
    assert "BINANCE_API_KEY_B" in result.stderr


def test_status_reads_the_account_named_among_several(tmp_path: Path) -> None:
    """``status --account NAME``: the leader and standbys of each account of a multi-account
    file (docs/HA.md), one call per account; a name not listed is a config error (78)."""
    from tests.support.redis_server import dead_redis_url

    config = tmp_path / "multi.toml"
    config.write_text(MULTI + f'[redis]\nurl = "{dead_redis_url()}"\nsocket_timeout_s = 0.5\n',
                      encoding="utf-8")
    result = CliRunner().invoke(cli, ["status", "--json", "--account", "b", "--config", str(config)])
    assert result.exit_code == 2, result.output  # Redis unreachable: down, as for one account
    assert json.loads(result.stdout)["account"] == "b"
    result = CliRunner().invoke(cli, ["status", "--account", "c", "--config", str(config)])
    assert result.exit_code == 78
    assert "no such account" in result.stderr
