"""``status`` never shows ``open``/``closed`` that the bot's verdict would call stale or
watchdog_down: no stale fallbacks, old data is reported unknown (docs/RULES.md rule 2). Each
test tries to make it lie. Real redis-server, the real store and verdict scripts; ``status``
reads what they wrote."""

from __future__ import annotations

from typing import Any

import pytest

from poswatch.client import WatchdogClient
from tests.support.store import ACCOUNT, MAX_AGE_MS, make_view, now_ms, position_key
from watchdog.core.model import PositionState
from watchdog.ops.status import EXIT_DEGRADED, EXIT_DOWN, read_status
from watchdog.store.heartbeat import Health


async def beat(publisher: Any) -> None:
    at_ms = now_ms()
    health = Health(pid=1, host="h", version="0", started_ms=at_ms, updated_ms=at_ms,
                    ready=True, healthy=True, stream_state="live", last_snapshot_ms=at_ms)
    await publisher.heartbeat(health.to_fields(), wall_ms=at_ms)


@pytest.mark.parametrize("state", [PositionState.OPEN, PositionState.CLOSED])
async def test_status_never_shows_aged_knowledge_as_truth(publisher: Any, redis_url: str,
                                                          state: PositionState) -> None:
    """The watchdog is alive but the position hash was last verified long ago (a wedged core
    loop, a failed write): the bot's check says stale; status must not say open/closed."""
    await beat(publisher)
    old_ms = now_ms() - 10 * MAX_AGE_MS
    await publisher.publish(make_view(position_key("BTCUSDT"), state=state, verified_ms=old_ms))
    bot = WatchdogClient.from_url(redis_url, ACCOUNT)
    try:
        verdict = bot.check("BTCUSDT", "BOTH")
    finally:
        bot.close()
    assert not verdict.allowed
    assert verdict.reason == "stale"  # age wins over state: an old closure is no truth either
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2)
    [row] = report.to_json()["positions"]
    assert row["state"] == "unknown", row
    assert row["stored_state"] == state.value
    assert "stale" in row["reason"]
    assert report.exit_code == EXIT_DEGRADED
    assert any("BTCUSDT:BOTH" in reason for reason in report.reasons)


async def test_fresh_knowledge_is_shown_as_it_is(publisher: Any, redis_url: str) -> None:
    await beat(publisher)
    await publisher.publish(make_view(position_key("BTCUSDT"), verified_ms=now_ms()))
    [row] = read_status(redis_url, ACCOUNT, socket_timeout_s=2).to_json()["positions"]
    assert (row["state"], row["stored_state"]) == ("open", "open")


async def test_a_dead_watchdog_shows_no_position_as_truth(publisher: Any, redis_url: str) -> None:
    """No heartbeat: every verdict is watchdog_down, so status must not print ``open``."""
    await beat(publisher)
    await publisher.publish(make_view(position_key("BTCUSDT"), verified_ms=now_ms()))
    await publisher.mark_stopped()
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2)
    assert report.exit_code == EXIT_DOWN
    [row] = report.to_json()["positions"]
    assert row["state"] == "unknown"
    assert "watchdog down" in row["reason"]


async def test_a_bots_malformed_member_does_not_crash_status(publisher: Any, redis_url: str) -> None:
    """A plain-Redis bot writes member 'btcusdt:BOTH' into the leases zset and the windows hash
    (by hand: ``begin`` refuses it since issue 12, the bot's ACL still allows ZADD/HSET there);
    status must still report (docs/RULES.md rule 3), showing the member as it is."""
    from watchdog.store.keys import AccountKeys

    await beat(publisher)
    await publisher.publish(make_view(position_key("BTCUSDT"), verified_ms=now_ms()))
    keys = AccountKeys(ACCOUNT)
    import redis as redis_sync

    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.zadd(keys.leases, {"btcusdt:BOTH": now_ms() + 30_000})
        client.hset(keys.windows, mapping={"btcusdt:BOTH": "{}", "btcusdt:BOTH:count": "1"})
        client.sadd(keys.positions, "BTCUSDT")  # an index member without a side
    finally:
        client.close()
    report = read_status(redis_url, ACCOUNT, socket_timeout_s=2)
    data = report.to_json()
    assert [lease["member"] for lease in data["leases"]] == ["btcusdt:BOTH"]
    assert any("btcusdt:BOTH" in reason for reason in report.reasons)
    assert report.exit_code == EXIT_DEGRADED


async def test_status_shows_a_fact_from_the_future_as_unknown(publisher: Any, redis_url: str) -> None:
    """As the verdicts judge it: a verified_ms far ahead (a clock stepped back) has no age."""
    await beat(publisher)
    await publisher.publish(make_view(position_key("BTCUSDT"), verified_ms=now_ms() + 60_000))
    [row] = read_status(redis_url, ACCOUNT, socket_timeout_s=2).to_json()["positions"]
    assert (row["state"], row["stored_state"], row["age_ms"]) == ("unknown", "open", None)
    assert "unknown age" in row["reason"]


def test_the_future_tolerance_is_the_one_the_verdict_scripts_use() -> None:
    from pathlib import Path

    import poswatch
    from watchdog.store.keys import FUTURE_TOLERANCE_MS

    prelude = (Path(poswatch.__file__).parent / "lua" / "_prelude.lua").read_text()
    assert f"local FUTURE_TOLERANCE_MS = {FUTURE_TOLERANCE_MS}\n" in prelude
