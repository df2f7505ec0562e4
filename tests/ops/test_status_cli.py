"""``position-watchdog status`` through click, against a real redis-server: 0 / 1 / 2 / 78."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from tests.ops.test_status import KEYS, write_health, write_position
from watchdog.cli import cli


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'[redis]\nurl = "{redis_url}"\naccount = "main"\n')
    return str(path)


def status(config: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["status", "--config", config, *extra])
    return result.exit_code, result.stdout


def fresh_health(client: redis.Redis, **overrides: object) -> None:
    import time

    now_ms = time.time_ns() // 1_000_000
    write_health(client, updated_ms=now_ms, last_snapshot_ms=now_ms - 100, **overrides)


def test_healthy_exits_0_with_one_json_line(client: redis.Redis, config: str) -> None:
    import time

    fresh_health(client)
    write_position(client, "BASUSDT:BOTH", "open", "1216", now_ms=time.time_ns() // 1_000_000)
    code, out = status(config, "--json")
    assert code == 0, out
    assert out.count("\n") == 1
    data = json.loads(out)
    assert (data["verdict"], data["exit_code"], data["alive"]) == ("healthy", 0, True)
    assert data["positions"][0]["symbol"] == "BASUSDT"


def test_degraded_exits_1(client: redis.Redis, config: str) -> None:
    fresh_health(client, stream_state="gap")
    code, out = status(config)
    assert code == 1, out
    assert out.startswith("position-watchdog [main]: DEGRADED (exit 1)")
    assert "! stream gap" in out


def test_down_exits_2(client: redis.Redis, config: str) -> None:
    client.delete(KEYS.health)
    code, out = status(config)
    assert code == 2, out
    assert "DOWN" in out.splitlines()[0]


def test_bad_config_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[redis]\nurl = 'localhost:6379'\n")
    result = CliRunner().invoke(cli, ["status", "--config", str(path)])
    assert result.exit_code == 78
    assert "[redis] url" in result.stderr


def test_config_from_the_environment_like_check_and_orphans(client: redis.Redis, config: str,
                                                             tmp_path: Path) -> None:
    """POSITION_WATCHDOG_CONFIG names the config, as for ``check`` and ``orphans``: no silent
    fallback to the defaults (which would read another Redis and report DOWN)."""
    fresh_health(client)
    result = CliRunner().invoke(cli, ["status", "--json"], env={"POSITION_WATCHDOG_CONFIG": config})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["alive"] is True
    missing = str(tmp_path / "nowhere.toml")
    result = CliRunner().invoke(cli, ["status"], env={"POSITION_WATCHDOG_CONFIG": missing})
    assert result.exit_code == 78, result.output
    assert "nowhere.toml" in result.stderr
