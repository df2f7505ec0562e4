"""The guard end to end: the daemon (``run()``) against the simulator over real sockets and a
real redis-server. A bot (signed HTTP, the veto scripts) moves or forgets its stop; what is
asserted is what operators and bots see: the position hash, the events stream, the health hash
and the simulator's orders. Lower bounds (never before the grace) are asserted; upper bounds
are generous deadlines (2 busy cores)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis.asyncio

from tests.integration.test_daemon import config_table, start_daemon
from tests.support.reaper_rig import Bot
from tests.support.waiting import eventually
from watchdog.client import AsyncWatchdogClient
from watchdog.core.guard import GUARD_CLIENT_ID_PREFIX
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.sim import Simulator
from watchdog.store.keys import AccountKeys

pytestmark = pytest.mark.integration

ACCOUNT = "itest"
KEYS = AccountKeys(ACCOUNT)
BAS = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)
DEFAULT_ALERT_MS = 3000  # [guard] unprotected_alert_ms default


def below_mark(sim: Simulator, factor: str = "0.9") -> str:
    tick = sim.exchange.specs["BASUSDT"].tick_size
    return f"{(sim.exchange.mark['BASUSDT'] * Decimal(factor)).quantize(tick):f}"


@contextlib.asynccontextmanager
async def daemon(sim: Simulator, redis_url: str, **guard: Any) -> AsyncIterator[Bot]:
    table = config_table(sim, redis_url)
    if guard:
        table["guard"] = guard
    task, stop = start_daemon(sim, table)
    async with httpx.AsyncClient(timeout=5.0) as http:
        veto = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
        try:
            yield Bot(sim, http, veto)
        finally:
            await veto.close()
            stop.set()
            assert await asyncio.wait_for(task, timeout=30) == 0


async def hash_of(r: redis.asyncio.Redis) -> dict[str, str]:
    return dict(await r.hgetall(KEYS.position(BAS)))


async def events(r: redis.asyncio.Redis, kind: str) -> list[dict[str, str]]:
    entries = await r.xrange(KEYS.events)
    return [{"id": entry_id, **fields} for entry_id, fields in entries
            if fields.get("kind") == kind]


async def covered(r: redis.asyncio.Redis) -> dict[str, str]:
    return await eventually(lambda: hash_of(r), lambda h: h.get("protection") == "covered",
                            timeout_s=30, what="BASUSDT:BOTH published covered")


def open_algos(sim: Simulator) -> dict[int, Any]:
    return {a.algo_id: a for a in sim.exchange.accounts[sim.api_key].algos.values() if a.is_open}


async def test_alert_after_the_default_grace_not_before_then_protected(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    async with daemon(sim, redis_url) as bot:
        stop_id = await bot.place_stop("BASUSDT", "SELL", below_mark(sim), qty="1216")
        await covered(rclient)
        cancelled_ms = int(time.time() * 1000)
        await bot.call("DELETE", "/fapi/v1/algoOrder", algoId=stop_id)
        position = await eventually(lambda: hash_of(rclient),
                                    lambda h: h.get("protection") == "none", timeout_s=20,
                                    what="protection none after the cancel")
        since = int(position["unprotected_since_ms"])
        assert since >= cancelled_ms - 50
        alert = (await eventually(lambda: events(rclient, "position_unprotected"), bool,
                                  timeout_s=30, what="position_unprotected"))[0]
        assert alert["position"] == "BASUSDT:BOTH"
        assert alert["protection"] == "none"
        assert int(alert["unprotected_ms"]) >= DEFAULT_ALERT_MS
        assert int(alert["at_ms"]) - cancelled_ms >= DEFAULT_ALERT_MS - 50  # never before
        health = await eventually(lambda: rclient.hget(KEYS.health, "problems"),
                                  lambda p: p is not None and "unprotected" in p, timeout_s=10,
                                  what="health problem raised")
        assert "BASUSDT:BOTH" in health
        await bot.place_stop("BASUSDT", "SELL", below_mark(sim), qty="1216")
        await covered(rclient)
        ended = await eventually(lambda: events(rclient, "position_protected"), bool,
                                 timeout_s=20, what="position_protected")
        assert ended[0]["by"] == "covered"
        await eventually(lambda: rclient.hget(KEYS.health, "problems"),
                         lambda p: p is not None and "unprotected" not in p, timeout_s=10,
                         what="health problem cleared")


async def test_no_alert_while_a_lease_covers_a_slow_stop_move(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    alert_ms = 1000
    sim.fill("BASUSDT", "BUY", "1216")
    async with daemon(sim, redis_url, unprotected_alert_ms=alert_ms) as bot:
        stop_id = await bot.place_stop("BASUSDT", "SELL", below_mark(sim), qty="1216")
        await covered(rclient)
        lease = await bot.begin(BAS, ttl_ms=30_000)
        await bot.call("DELETE", "/fapi/v1/algoOrder", algoId=stop_id)
        position = await eventually(lambda: hash_of(rclient),
                                    lambda h: h.get("protection") == "none", timeout_s=20,
                                    what="protection none after the cancel")
        since = int(position["unprotected_since_ms"])
        # The move takes 3 x the grace: the watchdog's own heartbeat says when that is over.
        await eventually(lambda: rclient.hget(KEYS.health, "updated_ms"),
                         lambda v: v is not None and int(v) > since + 3 * alert_ms,
                         timeout_s=20, what="three graces passed on the watchdog's clock")
        assert await events(rclient, "position_unprotected") == []
        await bot.place_stop("BASUSDT", "SELL", below_mark(sim, "0.92"), qty="1216")
        await bot.end(BAS, lease)
        await covered(rclient)
        assert await events(rclient, "position_unprotected") == []


GUARDED = {"unprotected_alert_ms": 1000, "emergency_stop_pct": 5.0, "emergency_after_ms": 2000}


async def test_emergency_stop_placed_then_removed_when_the_bots_stop_appears(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    async with daemon(sim, redis_url, **GUARDED) as bot:
        placed = (await eventually(lambda: events(rclient, "guard_stop_placed"), bool,
                                   timeout_s=30, what="guard_stop_placed"))[0]
        ours = [a for a in open_algos(sim).values()
                if a.client_algo_id.startswith(GUARD_CLIENT_ID_PREFIX)]
        assert len(ours) == 1
        stop = ours[0]
        assert (stop.order_type, stop.side, stop.close_position, stop.working_type) == (
            "STOP_MARKET", "SELL", True, "MARK_PRICE")
        mark = Decimal(placed["mark_price"])
        assert mark * Decimal("0.949") <= stop.trigger_price <= mark * Decimal("0.95")
        assert placed["client_id"] == stop.client_algo_id
        assert int(placed["algo_id"]) == stop.algo_id
        position = await covered(rclient)
        assert position["guard_order"] == stop.client_algo_id
        await bot.place_stop("BASUSDT", "SELL", below_mark(sim), qty="1216", client_id="bot-sl")
        removed = (await eventually(lambda: events(rclient, "guard_stop_removed"), bool,
                                    timeout_s=30, what="guard_stop_removed"))[0]
        assert removed["client_id"] == stop.client_algo_id
        assert stop.algo_id not in open_algos(sim)
        position = await eventually(lambda: hash_of(rclient), lambda h: h.get("guard_order") == "",
                                    timeout_s=20, what="guard_order cleared")
        assert position["protection"] == "covered"
        assert len(await events(rclient, "guard_stop_placed")) == 1


async def test_emergency_stop_of_a_closed_position_is_removed_by_the_guard_at_once(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    """core/guard.py rule 4b: no longer left to the reaper (whose prefix filter never skips ours:
    tests/core/test_guard.py::test_the_reaper_prefix_filter_does_not_skip_our_last_resort_stop)."""
    sim.fill("BASUSDT", "BUY", "1216")
    table_guard = dict(GUARDED)
    async with daemon(sim, redis_url, **table_guard):
        placed = (await eventually(lambda: events(rclient, "guard_stop_placed"), bool,
                                   timeout_s=30, what="guard_stop_placed"))[0]
        sim.fill("BASUSDT", "SELL", "1216")  # the bot closes by hand; our stop protects nothing
        removed = await eventually(lambda: events(rclient, "guard_stop_removed"),
                                   lambda found: any(e["client_id"] == placed["client_id"]
                                                     for e in found),
                                   timeout_s=40, what="our stop removed by the guard")
        assert [e["reason"] for e in removed] == ["the position closed"]
        assert int(placed["algo_id"]) not in open_algos(sim)


async def test_never_placed_for_a_closed_or_unknown_position(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    guard = {**GUARDED, "emergency_after_ms": 6000}
    async with daemon(sim, redis_url, **guard):
        position = await eventually(lambda: hash_of(rclient),
                                    lambda h: h.get("protection") == "none", timeout_s=30,
                                    what="protection none")
        since = int(position["unprotected_since_ms"])
        # Unknown: the stream goes mute and REST fails, so knowledge expires (core max_age_ms).
        sim.set_faults(stream="mute", rest_errors={"status": 503, "count": 100_000})
        await eventually(lambda: hash_of(rclient), lambda h: h.get("state") == "unknown",
                         timeout_s=30, what="position unknown")
        await eventually(lambda: rclient.hget(KEYS.health, "updated_ms"),
                         lambda v: v is not None and int(v) > since + 6000 + 2000,
                         timeout_s=30, what="emergency_after_ms passed while unknown")
        assert await events(rclient, "guard_stop_placed") == []
        assert await events(rclient, "guard_stop_failed") == []  # not even tried
        sim.clear_faults()
        sim.fill("BASUSDT", "SELL", "1216")  # closed: nothing to protect
        closed = await eventually(lambda: hash_of(rclient), lambda h: h.get("state") == "closed",
                                  timeout_s=30, what="position closed")
        assert "protection" not in closed
        await eventually(lambda: rclient.hget(KEYS.health, "updated_ms"),
                         lambda v: v is not None and int(v) > int(closed["verified_ms"]) + 3000,
                         timeout_s=30, what="time passed after the closure")
        assert await events(rclient, "guard_stop_placed") == []
        assert open_algos(sim) == {}


async def test_hedge_mode_each_side_is_guarded_on_its_own(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    """LONG covered by its SELL stop, SHORT left bare: only the SHORT side gets a last-resort
    stop (a BUY closePosition on positionSide SHORT)."""
    sim.exchange.set_dual_side(sim.api_key, True)
    sim.fill("BASUSDT", "BUY", "1216", "LONG")
    sim.fill("BASUSDT", "SELL", "1000", "SHORT")
    long_key = KEYS.position(PositionKey(Symbol("BASUSDT"), PositionSide.LONG))
    short_key = KEYS.position(PositionKey(Symbol("BASUSDT"), PositionSide.SHORT))
    async with daemon(sim, redis_url, **GUARDED) as bot:
        await bot.place_stop("BASUSDT", "SELL", below_mark(sim), qty="1216", position_side="LONG")
        await eventually(lambda: rclient.hget(long_key, "protection"), lambda v: v == "covered",
                         timeout_s=30, what="LONG covered")
        placed = (await eventually(lambda: events(rclient, "guard_stop_placed"), bool,
                                   timeout_s=30, what="guard_stop_placed"))[0]
        assert placed["position"] == "BASUSDT:SHORT"
        assert placed["order_side"] == "BUY"
        ours = [a for a in open_algos(sim).values()
                if a.client_algo_id.startswith(GUARD_CLIENT_ID_PREFIX)]
        assert [(a.position_side, a.side, a.close_position) for a in ours] == [
            ("SHORT", "BUY", True)]
        await eventually(lambda: rclient.hget(short_key, "protection"), lambda v: v == "covered",
                         timeout_s=30, what="SHORT covered by the watchdog's stop")
        assert await rclient.hget(long_key, "guard_order") == ""
        assert len(await events(rclient, "guard_stop_placed")) == 1


async def test_a_stream_reconnect_while_covered_raises_nothing(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    """Chaos: the stream drops while the position is covered. Orders are unknown until read
    after the gap (never a stale ``covered``, never an alert on ``unknown``), then covered."""
    sim.fill("BASUSDT", "BUY", "1216")
    async with daemon(sim, redis_url, unprotected_alert_ms=1000) as bot:
        await bot.place_stop("BASUSDT", "SELL", below_mark(sim), qty="1216")
        await covered(rclient)
        before = len(await events(rclient, "stream_recovered"))
        sim.set_faults(stream="disconnect")
        await eventually(lambda: events(rclient, "stream_recovered"),
                         lambda found: len(found) > before, timeout_s=30,
                         what="stream recovered after the disconnect")
        await covered(rclient)
        assert await events(rclient, "position_unprotected") == []


async def test_a_muted_stream_does_not_hide_a_cancelled_stop_for_ever(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    """Chaos (the incident's failure): with the stream muted the cancel has no event; the
    guard learns it from its own orders reads and still alerts."""
    sim.fill("BASUSDT", "BUY", "1216")
    async with daemon(sim, redis_url, unprotected_alert_ms=1000) as bot:
        stop_id = await bot.place_stop("BASUSDT", "SELL", below_mark(sim), qty="1216")
        await covered(rclient)
        sim.set_faults(stream="mute")
        await bot.call("DELETE", "/fapi/v1/algoOrder", algoId=stop_id)
        alert = (await eventually(lambda: events(rclient, "position_unprotected"), bool,
                                  timeout_s=60, what="position_unprotected with the stream muted"))
        assert alert[0]["protection"] == "none"
