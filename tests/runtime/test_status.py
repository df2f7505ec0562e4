"""``status`` against a real redis-server: healthy → 0, degraded → 1, down → 2."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from watchdog.runtime.health import Health
from watchdog.runtime.status import EXIT_DEGRADED, EXIT_DOWN, EXIT_HEALTHY, read_status
from watchdog.runtime.status_view import render_text
from watchdog.store.keys import AccountKeys, parse_member

ACCOUNT = "main"
NOW_MS = 1_764_000_000_000
KEYS = AccountKeys(ACCOUNT)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


def write_health(client: redis.Redis, **overrides: object) -> None:
    values: dict[str, object] = dict(
        pid=4242, host="bot-host", version="0.1.0", started_ms=NOW_MS - 60_000,
        updated_ms=NOW_MS - 300, ready=True, healthy=True, stream_state="live",
        last_event_ms=NOW_MS - 2_000, last_snapshot_ms=NOW_MS - 500, rest_weight_used_1m=40,
        rest_weight_budget_1m=360, positions_open=1, orphans_removed=1, reaper="on")
    values.update(overrides)
    health = Health(**values)  # type: ignore[arg-type]
    fields: dict[Any, Any] = health.to_fields()
    client.hset(KEYS.health, mapping=fields)
    client.pexpire(KEYS.health, 5000)


def write_position(client: redis.Redis, member: str, state: str, amt: str) -> None:
    fields: dict[Any, Any] = {"state": state, "amt": amt, "entry": "0.00832684", "source": "stream",
                              "as_of_ms": NOW_MS - 900, "verified_ms": NOW_MS - 400, "version": 7}
    client.hset(KEYS.position(parse_member(member)), mapping=fields)
    client.sadd(KEYS.positions, member)


def test_healthy(client: redis.Redis, redis_url: str) -> None:
    write_health(client)
    write_position(client, "BASUSDT:BOTH", "open", "1216")
    client.hset(KEYS.windows, "BASUSDT:BOTH", json.dumps({"window_ms": 412, "at_ms": NOW_MS - 10_000}))
    client.xadd(KEYS.events, {"kind": "orphan_removed", "symbol": "BASUSDT"})
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.exit_code == EXIT_HEALTHY, report.reasons
    data = report.to_json()
    assert data["alive"] is True
    assert data["stream"] == {"state": "live", "last_event_age_ms": 2000}
    assert data["rest"]["last_snapshot_age_ms"] == 500
    assert data["positions"][0]["state"] == "open"
    assert data["positions"][0]["age_ms"] == 400
    assert data["unprotected_windows"] == [
        {"symbol": "BASUSDT", "side": "BOTH", "window_ms": 412, "at_ms": NOW_MS - 10_000}]
    assert data["orphans_removed"] == 1
    json.dumps(data)  # serialisable as is
    text = render_text(report)
    assert text.splitlines()[0] == "position-watchdog [main]: HEALTHY (exit 0)"
    assert "BASUSDT" in text


def test_degraded_when_stream_lost_or_position_unknown(client: redis.Redis, redis_url: str) -> None:
    write_health(client, stream_state="down", healthy=False, problems=("stream down",))
    write_position(client, "BTCUSDT:LONG", "unknown", "0.5")
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.exit_code == EXIT_DEGRADED
    assert "stream down" in report.reasons
    assert any("BTCUSDT:LONG" in reason for reason in report.reasons)
    assert "DEGRADED" in render_text(report)


def test_degraded_while_starting(client: redis.Redis, redis_url: str) -> None:
    write_health(client, ready=False)
    assert read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS).exit_code == EXIT_DEGRADED


def test_down_without_heartbeat(client: redis.Redis, redis_url: str) -> None:
    write_position(client, "BASUSDT:BOTH", "open", "1216")
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.exit_code == EXIT_DOWN
    assert report.to_json()["alive"] is False
    assert "not running" in render_text(report)


def test_down_when_redis_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = read_status(f"redis://127.0.0.1:{port}/0", ACCOUNT, socket_timeout_s=0.5)
    assert report.exit_code == EXIT_DOWN
    assert report.reasons[0].startswith("redis unreachable")
