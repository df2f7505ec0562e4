"""The guard across a failover (core/guard.py rule 7, docs/GUARD.md "Several instances"): two real
instances (``python -m watchdog run``) at the default guard settings, real redis-server, the
simulator over real sockets. The leader is killed -9 around the moment a forgotten stop is
alerted on; what is asserted is what operators and bots see after the takeover: one
``position_unprotected`` per unprotected run (not lost, not repeated), its start kept, and the
health problem raised by the new leader."""

from __future__ import annotations

import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import redis.asyncio

from tests.integration.test_daemon import KEYS
from tests.integration.test_ha import leader_of, place_stop, start_group, sync, the_leader
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

MEMBER = "BASUSDT:BOTH"
DEFAULT_ALERT_MS = 3000  # [guard] unprotected_alert_ms default


async def position(r: redis.asyncio.Redis) -> dict[str, str]:
    return dict(await r.hgetall(f"{KEYS.prefix}:pos:{MEMBER}"))


async def alerts(r: redis.asyncio.Redis) -> list[dict[str, str]]:
    return [dict(f) for _, f in await r.xrange(KEYS.events)
            if f.get("kind") == "position_unprotected" and f.get("position") == MEMBER]


def cancel(sim: Simulator, algo_id: int) -> None:
    """The bot forgets its stop: cancelled, no replacement."""
    sim.exchange.cancel_algo(sim.api_key, algo_id, None)
    sim.venue.flush()


async def failover(sim: Simulator, redis_url: str, tmp_path: Path, r: redis.asyncio.Redis,
                   stack: AsyncExitStack, *, alert_first: bool) -> tuple[dict[str, str], int]:
    """Both instances warm, the stop cancelled, the leader killed -9 either right after it
    published ``none`` (inside the grace) or after its alert. Returns the old leader's published
    hash and the new fence once the new leader judged the position ``none`` itself."""
    sim.fill("BASUSDT", "BUY", "1216")
    stop = place_stop(sim, "BASUSDT", "1216")
    group = await start_group(stack, sim, redis_url, tmp_path, 2, r)
    await eventually(lambda: position(r), lambda h: h.get("protection") == "covered",
                     timeout_s=60, what="covered under the first leader")
    old = the_leader(group, await leader_of(r))
    new = next(i for i in group if i is not old)
    await eventually(sync(new.text), lambda t: "stream_recovered" in t, timeout_s=30,
                     what="the standby's stream live")
    old_fence = int(await r.get(KEYS.fence))
    cancel(sim, stop)
    told = await eventually(lambda: position(r), lambda h: h.get("protection") == "none",
                            timeout_s=30, what="the leader publishes none")
    if alert_first:
        await eventually(lambda: alerts(r), bool, timeout_s=30, what="the leader's alert")
    else:
        assert not await alerts(r)
    old.process.kill()
    await eventually(lambda: position(r),
                     lambda h: h.get("fence") not in (None, str(old_fence))
                     and h.get("protection") == "none", timeout_s=60,
                     what="the new leader judged the position none")
    new_fence = int(await r.get(KEYS.fence))
    assert new.owns(await r.hget(KEYS.health, "instance"))
    # the health problem, raised by the new leader
    await eventually(lambda: r.hget(KEYS.health, "problems"),
                     lambda p: p is not None and MEMBER in p and "unprotected" in p,
                     timeout_s=30, what="the new leader's health problem")
    return told, new_fence


async def beats_later(r: redis.asyncio.Redis, beats: int = 3) -> None:
    """Wait (on a condition) until the leader wrote its health ``beats`` more times: by then any
    event its guard decided at the takeover has been written."""
    first = int(await r.hget(KEYS.health, "beat_ms") or 0)
    await eventually(lambda: r.hget(KEYS.health, "beat_ms"),
                     lambda at: at is not None and int(at) > first + 200 * beats,
                     timeout_s=30, what=f"{beats} more heartbeats")


async def test_an_alert_due_when_the_leader_died_is_sent_by_the_new_leader_with_its_start_kept(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        told, _ = await failover(sim, redis_url, tmp_path, rclient, stack, alert_first=False)
        sent = await eventually(lambda: alerts(rclient), bool, timeout_s=30,
                                what="position_unprotected from the new leader")
        await beats_later(rclient)
        sent = await alerts(rclient)
        assert len(sent) == 1, sent
        # the run the old leader saw, not one restarted at the takeover
        assert sent[0]["unprotected_since_ms"] == told["unprotected_since_ms"]
        assert int(sent[0]["unprotected_ms"]) >= DEFAULT_ALERT_MS
        assert (await position(rclient))["unprotected_since_ms"] == told["unprotected_since_ms"]


async def test_an_alert_the_old_leader_sent_is_not_repeated_after_the_takeover(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        told, _ = await failover(sim, redis_url, tmp_path, rclient, stack, alert_first=True)
        taken = time.monotonic()
        await beats_later(rclient, beats=int(DEFAULT_ALERT_MS / 200) + 5)  # past a whole grace
        assert time.monotonic() - taken >= DEFAULT_ALERT_MS / 1000
        sent = await alerts(rclient)
        assert len(sent) == 1, sent
        assert (await position(rclient))["unprotected_since_ms"] == told["unprotected_since_ms"]



async def test_a_position_closed_while_the_leader_is_dead_shows_no_protection_after_the_takeover(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    """docs/HA.md, a closure only a standby saw: the dead leader showed the position
    ``covered``; it closed (its stop became an orphan) before the standby took over. Until
    session 9 the new leader published it closed and left ``protection: covered`` beside
    ``state: closed`` for ``closed_ttl_s`` (a day): its guard had cleared the protection as a
    standby, and a republish wrote only the protections it held."""
    sim.fill("BASUSDT", "BUY", "1216")
    place_stop(sim, "BASUSDT", "1216")
    async with AsyncExitStack() as stack:
        group = await start_group(stack, sim, redis_url, tmp_path, 2, rclient)
        await eventually(lambda: position(rclient), lambda h: h.get("protection") == "covered",
                         timeout_s=60, what="covered under the first leader")
        old = the_leader(group, await leader_of(rclient))
        new = next(i for i in group if i is not old)
        await eventually(sync(new.text), lambda t: "stream_recovered" in t, timeout_s=30,
                         what="the standby's stream live")
        old_fence = await rclient.get(KEYS.fence)
        old.process.kill()
        await old.process.wait()
        sim.fill("BASUSDT", "SELL", "1216")  # within the dead leader's lease: a standby's sight
        await eventually(lambda: position(rclient),
                         lambda h: h.get("fence") not in (None, old_fence)
                         and h.get("state") == "closed", timeout_s=60,
                         what="the new leader published the position closed")
        await beats_later(rclient)
        shown = await position(rclient)
        assert shown["state"] == "closed"
        assert "protection" not in shown, shown
        assert "guard_order" not in shown, shown
        assert "unprotected_since_ms" not in shown, shown


async def kinds_after(r: redis.asyncio.Redis, after: str, kind: str) -> list[dict[str, str]]:
    """Events of ``kind`` on the position written after the entry ``after``."""
    return [dict(f) for entry, f in await r.xrange(KEYS.events)
            if entry > after and f.get("kind") == kind and f.get("position") == MEMBER]


async def test_an_instance_taking_the_lead_back_shows_no_covered_from_what_its_muted_stream_kept(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    """core/guard.py rule 1c. A leads (its stop read by REST) and is paused past its lease; B
    leads. The stream is muted for both; the bot's stop is cancelled while A stands by: only
    B's REST reads see it, and B publishes ``none`` and alerts. B dies (-9) and A takes the lead
    back while REST fails (so its takeover's reads cannot race its first judgment, as they do
    on loopback). On main A republished ``covered`` from the book its muted stream kept (still
    ``live`` to it) and told ``position_protected`` for the position without a stop."""
    sim.fill("BASUSDT", "BUY", "1216")
    stop = place_stop(sim, "BASUSDT", "1216")
    async with AsyncExitStack() as stack:
        group = await start_group(stack, sim, redis_url, tmp_path, 2, rclient)
        await eventually(lambda: position(rclient), lambda h: h.get("protection") == "covered",
                         timeout_s=60, what="covered under the first leader")
        first = the_leader(group, await leader_of(rclient))
        second = next(i for i in group if i is not first)
        await eventually(sync(second.text), lambda t: "stream_recovered" in t, timeout_s=30,
                         what="the standby's stream live")
        first.process.send_signal(signal.SIGSTOP)
        await eventually(lambda: rclient.hget(KEYS.health, "instance"), second.owns, timeout_s=30,
                         what="the standby leads while the leader is paused")
        sim.set_faults(stream="mute")  # connected, pings answered, no events: for both
        first.process.send_signal(signal.SIGCONT)
        await eventually(sync(first.text), lambda t: "stepping down" in t, timeout_s=30,
                         what="the resumed leader steps down")
        cancel(sim, stop)  # no ALGO_UPDATE reaches either instance
        await eventually(lambda: position(rclient), lambda h: h.get("protection") == "none",
                         timeout_s=60, what="the second leader finds the stop gone by REST")
        told = await eventually(lambda: alerts(rclient), bool, timeout_s=30,
                                what="the second leader's alert")
        last = (await rclient.xrevrange(KEYS.events, count=1))[0][0]
        second_fence = await rclient.get(KEYS.fence)
        second.process.kill()
        await second.process.wait()
        sim.set_faults(rest_errors={"status": 503, "count": 100_000})
        seen: list[str] = []

        async def under_the_first() -> dict[str, str]:
            h = await position(rclient)
            if h.get("fence") not in (None, second_fence):
                seen.append(h.get("protection", ""))
            return h

        await eventually(lambda: rclient.hget(KEYS.health, "instance"), first.owns, timeout_s=30,
                         what="the first instance leads again")
        await eventually(under_the_first, lambda h: h.get("fence") not in (None, second_fence),
                         timeout_s=30, what="the takeover's republish")
        await beats_later(rclient)  # its first judgments written
        await under_the_first()
        assert "covered" not in seen, seen
        assert await kinds_after(rclient, last, "position_protected") == []
        sim.set_faults(rest_errors=None)
        await eventually(under_the_first, lambda h: h.get("protection") == "none", timeout_s=60,
                         what="the first instance, with REST back, judges the position none")
        await beats_later(rclient)
        assert "covered" not in seen, seen
        assert await kinds_after(rclient, last, "position_protected") == []
        assert len(await alerts(rclient)) == 1  # the second leader's, not repeated
        assert (await position(rclient))["unprotected_since_ms"] == \
            told[0]["unprotected_since_ms"]
