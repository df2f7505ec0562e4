"""``status`` against a real redis-server: healthy → 0, degraded → 1, down → 2."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from watchdog.ops.status import EXIT_DEGRADED, EXIT_DOWN, EXIT_HEALTHY, read_status
from watchdog.ops.status_view import render_text
from watchdog.store.heartbeat import Health
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
    client.hset(KEYS.health, "veto_max_age_ms", 5000)  # the store's own field (publisher.py)
    client.pexpire(KEYS.health, 5000)


def write_position(client: redis.Redis, member: str, state: str, amt: str,
                   now_ms: int = NOW_MS) -> None:
    fields: dict[Any, Any] = {"state": state, "amt": amt, "entry": "0.00832684", "source": "stream",
                              "as_of_ms": now_ms - 900, "verified_ms": now_ms - 400, "version": 7}
    client.hset(KEYS.position(parse_member(member)), mapping=fields)
    client.sadd(KEYS.positions, member)


def test_healthy(client: redis.Redis, redis_url: str) -> None:
    write_health(client)
    write_position(client, "BASUSDT:BOTH", "open", "1216")
    # The format store/lua/end.lua writes: the last window as JSON, plus count and maximum.
    last = {"holder": "bot", "token": 3, "window_ms": 412, "end_ms": NOW_MS - 10_000, "outcome": "ok"}
    client.hset(KEYS.windows, mapping={"BASUSDT:BOTH": json.dumps(last), "BASUSDT:BOTH:count": 2,
                                       "BASUSDT:BOTH:max_window_ms": 530})
    client.xadd(KEYS.events, {"kind": "orphan_removed", "symbol": "BASUSDT"})
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.exit_code == EXIT_HEALTHY, report.reasons
    data = report.to_json()
    assert data["alive"] is True
    assert data["stream"] == {"state": "live", "last_event_age_ms": 2000, "proof": "proven",
                              "unproven_age_ms": None, "unproven_reason": None}
    assert data["rest"]["last_snapshot_age_ms"] == 500
    assert data["positions"][0]["state"] == "open"
    assert data["positions"][0]["age_ms"] == 400
    assert data["unprotected_windows"] == [
        {"symbol": "BASUSDT", "side": "BOTH", "last": last, "count": 2, "max_window_ms": 530}]
    assert data["orphans_removed"] == 1
    json.dumps(data)  # serialisable as is
    text = render_text(report)
    assert text.splitlines()[0] == "position-watchdog [main]: HEALTHY (exit 0)"
    assert "BASUSDT" in text
    assert "BASUSDT:BOTH last 412 ms by bot (outcome ok), max 530 ms over 2 update(s)" in text


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


async def test_leases_and_windows_from_the_real_veto_scripts(publisher: Any, redis_url: str) -> None:
    """What ``begin``/``end`` really write (store/lua), read back by ``status``."""
    import time

    from poswatch.client import WatchdogClient
    from tests.support.store import ACCOUNT as STORE_ACCOUNT
    from tests.support.store import make_view, position_key

    now_ms = time.time_ns() // 1_000_000
    health = Health(pid=1, host="h", version="0", started_ms=now_ms, updated_ms=now_ms, ready=True,
                    healthy=True, stream_state="live")
    await publisher.heartbeat(health.to_fields(), wall_ms=now_ms)
    await publisher.publish(make_view(position_key("BTCUSDT"), verified_ms=now_ms))
    bot = WatchdogClient.from_url(redis_url, STORE_ACCOUNT)
    try:
        verdict = bot.begin("BTCUSDT", "BOTH", holder="bot-1", ttl_ms=30_000)
        assert verdict.allowed, verdict
        assert verdict.lease is not None
        leased = read_status(redis_url, STORE_ACCOUNT, socket_timeout_s=2).to_json()
        assert [(lease["symbol"], lease["holder"], lease["token"]) for lease in leased["leases"]] == [
            ("BTCUSDT", "bot-1", str(verdict.lease))]
        assert leased["leases"][0]["expires_in_ms"] > 0
        bot.confirm("BTCUSDT", "BOTH", verdict.lease)
        bot.end("BTCUSDT", "BOTH", verdict.lease)
    finally:
        bot.close()
    report = read_status(redis_url, STORE_ACCOUNT, socket_timeout_s=2)
    data = report.to_json()
    assert data["leases"] == []
    [window] = data["unprotected_windows"]
    assert (window["symbol"], window["count"], window["last"]["holder"]) == ("BTCUSDT", 1, "bot-1")
    assert window["last"]["window_ms"] >= 0
    assert "BTCUSDT:BOTH last" in render_text(report)


# ---------------------------------------------------------------- at 3 a.m. (issue 15)

_EPOCH_MS = re.compile(r"(?<!\d)1\d{12}(?!\d)")  # a raw epoch-ms number in the human view


def test_human_view_shows_utc_times_and_ages_not_epoch_ms(client: redis.Redis,
                                                          redis_url: str) -> None:
    write_health(client)
    last = {"holder": "bot", "token": 3, "begin_ms": NOW_MS - 10_412, "end_ms": NOW_MS - 10_000,
            "window_ms": 412, "outcome": "ok"}
    client.hset(KEYS.windows, mapping={"BASUSDT:BOTH": json.dumps(last), "BASUSDT:BOTH:count": 1,
                                       "BASUSDT:BOTH:max_window_ms": 412})
    client.xadd(KEYS.events, {"kind": "position_closed", "symbol": "BASUSDT",
                              "at_ms": NOW_MS - 4_000, "as_of_ms": NOW_MS - 4_100},
                id=f"{NOW_MS - 4_000}-0")
    text = render_text(read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS))
    assert not _EPOCH_MS.search(text), text
    assert "2025-11-24 15:59:56.000Z (4.0s ago)" in text, text  # NOW_MS is 16:00:00 UTC
    assert "kind=position_closed" in text


def test_unknown_positions_name_their_cause(client: redis.Redis, redis_url: str) -> None:
    """During a 503 burst the positions are unknown because REST fails: say so."""
    rest = ("REST reads failing (3 in a row: ExchangeUnavailable: GET /fapi/v3/positionRisk: "
            "HTTP 503 code -1001: Service Unavailable.)")
    write_health(client, healthy=False, problems=(rest, "3 position(s) unknown"),
                 positions_unknown=3)
    for symbol in ("BASUSDT", "BTCUSDT", "ETHUSDT"):
        write_position(client, f"{symbol}:BOTH", "unknown", "0")
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.exit_code == EXIT_DEGRADED
    line = next(r for r in render_text(report).splitlines() if "position(s) unknown:" in r)
    assert "cause: REST reads failing" in line, line
    data = report.to_json()
    assert data["unknown_cause"].startswith("REST reads failing")
    assert "3 position(s) unknown: BASUSDT:BOTH, BTCUSDT:BOTH, ETHUSDT:BOTH" in data["reasons"]


def test_weight_over_budget_is_degraded(client: redis.Redis, redis_url: str) -> None:
    write_health(client, rest_weight_used_1m=383, rest_weight_budget_1m=360)
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.exit_code == EXIT_DEGRADED
    assert any("383/360" in reason for reason in report.reasons), report.reasons
    assert "HEALTHY" not in render_text(report)


def test_redis_down_does_not_show_zero_positions_as_known() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = read_status(f"redis://127.0.0.1:{port}/0", ACCOUNT, socket_timeout_s=0.5)
    text = render_text(report)
    assert "positions (0)" not in text
    assert "leases (0)" not in text
    assert "positions  unknown (Redis unreachable)" in text, text


def test_unparsable_fields_are_shown_and_status_carries_on(client: redis.Redis,
                                                           redis_url: str) -> None:
    """A bot's lease with ttl_ms="inf" (score +inf) and garbage in the health hash: status
    shows what it cannot parse instead of crashing (OverflowError, exit 1)."""
    write_health(client)
    client.hset(KEYS.health, mapping={"started_ms": "soon", "problems": "5", "positions_open": "x"})
    client.zadd(KEYS.leases, {"BTCUSDT:BOTH": float("inf")})
    client.hset(KEYS.lease(parse_member("BTCUSDT:BOTH")),
                mapping={"holder": "bot-1", "token": "7", "ttl_ms": "inf"})
    client.hset(KEYS.windows, mapping={"ETHUSDT:BOTH": json.dumps({"window_ms": "inf"}),
                                       "ETHUSDT:BOTH:count": "lots"})
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.health is not None  # the heartbeat is there: alive, not "down"
    assert report.exit_code == EXIT_DEGRADED
    text = " ".join(report.reasons)
    for field in ("started_ms='soon'", "problems='5'", "positions_open='x'"):
        assert field in text, report.reasons
    assert "BTCUSDT:BOTH" in text
    assert "inf" in text
    json.dumps(report.to_json(), allow_nan=False)
    rendered = render_text(report)
    assert "BTCUSDT:BOTH holder=bot-1" in rendered
    assert "expires ?" in rendered


def test_degraded_while_the_stream_is_unproven(client: redis.Redis, redis_url: str) -> None:
    """Issue 12: after a blind verdict the stream is live again (reconnected, reconciled) but
    unproven; status says so in both forms and exits 1 until REST corroborates it."""
    reason = "BTCUSDT:BOTH: REST shows amount 0 but the stream last reported 1"
    write_health(client, stream_proof="unproven", stream_unproven_since_ms=NOW_MS - 12_300,
                 stream_unproven_reason=reason)  # an older daemon's heartbeat: no problem listed
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.exit_code == EXIT_DEGRADED
    assert report.reasons == ("stream unproven: found blind, no event since confirmed by REST",)
    stream = report.to_json()["stream"]
    assert stream == {"state": "live", "last_event_age_ms": 2000, "proof": "unproven",
                      "unproven_age_ms": 12_300, "unproven_reason": reason}
    text = render_text(report)
    assert f"  stream     live, unproven for 12.3s ({reason}), last event 2.0s ago" in text
    assert "! stream unproven" in text


def test_protection_is_shown_and_an_unprotected_position_degrades(
        client: redis.Redis, redis_url: str) -> None:
    """The guard's added fields (docs/GUARD.md): in --json and in the human table; the daemon's
    health problem makes the verdict degraded; a stale position's protection reads unknown."""
    problem = "1 position(s) unprotected (no covering stop): BASUSDT:BOTH"
    write_health(client, healthy=False, problems=(problem,))
    write_position(client, "BASUSDT:BOTH", "open", "1216")
    client.hset(KEYS.position(parse_member("BASUSDT:BOTH")),
                mapping={"protection": "none", "unprotected_since_ms": NOW_MS - 4200,
                         "guard_order": "wd-guard-1-1"})
    write_position(client, "BTCUSDT:BOTH", "open", "0.5", now_ms=NOW_MS - 60_000)
    client.hset(KEYS.position(parse_member("BTCUSDT:BOTH")),
                mapping={"protection": "covered", "unprotected_since_ms": ""})
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2, now_ms=NOW_MS)
    assert report.exit_code == EXIT_DEGRADED
    assert problem in report.reasons
    rows = {p["symbol"]: p for p in report.to_json()["positions"]}
    bas, btc = rows["BASUSDT"], rows["BTCUSDT"]
    assert (bas["protection"], bas["unprotected_since_ms"], bas["unprotected_ms"]) == (
        "none", NOW_MS - 4200, 4200)
    assert bas["guard_order"] == "wd-guard-1-1"
    assert btc["state"] == "unknown"
    assert (btc["protection"], btc["unprotected_since_ms"]) == ("unknown", None)
    text = render_text(report)
    assert "none for 4.2s (watchdog stop wd-guard-1-1)" in text
