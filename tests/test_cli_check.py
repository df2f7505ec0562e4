"""``position-watchdog check`` exit codes and JSON line, against a real redis-server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.redis_server import dead_redis_url
from tests.support.store import ACCOUNT, make_view, position_key
from watchdog.cli import cli
from watchdog.store.publisher import RedisPublisher


def write_config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'[redis]\nurl = "{url}"\naccount = "{ACCOUNT}"\n\n[veto]\nmax_age_ms = 5000\n')
    return str(path)


def run_check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", *args])
    return result.exit_code, result.stdout


async def test_allow_exits_0_with_one_json_line(publisher: RedisPublisher, redis_url: str,
                                                tmp_path: Path) -> None:
    await publisher.heartbeat({"stream": "live"})
    now_ms = int(time.time() * 1000)
    await publisher.publish(make_view(position_key("BTCUSDT"), version=1, verified_ms=now_ms))
    code, out = run_check("btcusdt", "--json", "--config", write_config(tmp_path, redis_url))
    assert code == 0, out
    line = json.loads(out)
    assert line["verdict"] == "allow"
    assert line["reason"] == "ok"
    assert line["position"]["state"] == "open"
    assert isinstance(line["age_ms"], int)
    assert len(out.splitlines()) == 1


async def test_veto_exits_1(publisher: RedisPublisher, redis_url: str, tmp_path: Path) -> None:
    await publisher.heartbeat({"stream": "live"})
    code, out = run_check("ETHUSDT", "--side", "LONG", "--config", write_config(tmp_path, redis_url))
    assert code == 1
    assert out.startswith("VETO ETHUSDT:LONG reason=no_position")


def test_unreachable_redis_is_watchdog_down(tmp_path: Path) -> None:
    code, out = run_check("BTCUSDT", "--json", "--config", write_config(tmp_path, dead_redis_url()))
    assert code == 1
    assert json.loads(out) == {"verdict": "veto", "reason": "watchdog_down", "position": {}, "age_ms": None}


@pytest.mark.parametrize("args", [
    ["BTC/USDT"],                        # not a Binance symbol
    ["BTCUSDT", "--side", "UP"],          # click usage error
    ["BTCUSDT", "--config", "/nonexistent/config.toml"],
], ids=["bad_symbol", "bad_side", "missing_config"])
def test_usage_and_config_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    if "--config" not in args:
        args = [*args, "--config", write_config(tmp_path, dead_redis_url())]
    code, _ = run_check(*args)
    assert code == 2
