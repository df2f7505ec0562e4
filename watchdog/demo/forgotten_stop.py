"""Scenario (c) of the demo: the bot forgets its stop, and the watchdog's guard notices, places
its last-resort stop and removes it once the bot's own stop is back (docs/GUARD.md)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from watchdog.core.guard import GUARD_CLIENT_ID_PREFIX
from watchdog.demo.processes import watchdog_daemon
from watchdog.demo.result import DemoResult
from watchdog.demo.script import (
    ENTRY,
    FIRST_STOP,
    QTY,
    SYMBOL,
    DemoFailed,
    SimControl,
    demo_config,
    field_is,
    flag,
    wait_async,
    watchdog_actors,
)
from watchdog.demo.timeline import Timeline
from watchdog.sim import Simulator

__all__ = ["scenario_forgotten_stop"]

GUARD_ALERT_MS = 3000  # [guard] unprotected_alert_ms, the default
GUARD_AFTER_MS = 5000
GUARD_PCT = "2.0"


async def scenario_forgotten_stop(sim: Simulator, ctl: SimControl, redis_url: str,
                                  result: DemoResult, echo: bool, log_path: Path) -> None:
    """(c): the guard notices a forgotten stop and, switched on, protects the position."""
    tl = Timeline("(c) the bot forgets its stop — the watchdog's guard", echo=echo)
    tl.header()
    keys, position, client, bot = watchdog_actors(sim, redis_url)
    seen: dict[str, int] = {}
    forgot_at: list[int] = []

    async def follow_events(since_id: str) -> None:
        async for event in client.subscribe(last_id=since_id, block_ms=200):
            if event.kind not in ("position_unprotected", "position_protected",
                                  "guard_stop_placed", "guard_stop_removed", "guard_stop_failed"):
                continue
            detail = " ".join(f"{k}={event.fields[k]}" for k in
                              ("protection", "by", "client_id", "trigger_price", "mark_price")
                              if event.fields.get(k))
            at_ms = tl.add("watchdog", f"event {event.kind} {detail}".rstrip())
            if forgot_at:  # what follows the forgetting, not a startup's moment
                seen.setdefault(event.kind, at_ms)

    config = (demo_config(sim, redis_url) + f"\n[guard]\nemergency_stop_pct = {GUARD_PCT}\n"
              f"emergency_after_ms = {GUARD_AFTER_MS}\n")
    async with watchdog_daemon(config, sim.api_key, sim.api_secret, log_path):
        follower: asyncio.Task[None] | None = None
        try:
            if not await wait_async(lambda: field_is(client, keys.health, "ready", "true"), 30):
                raise DemoFailed("the watchdog was not ready within 30 s", log_path)
            tl.add("watchdog", f"running with [guard] emergency_stop_pct={GUARD_PCT}, "
                   f"emergency_after_ms={GUARD_AFTER_MS} (alert after {GUARD_ALERT_MS} ms)")
            follower = asyncio.create_task(follow_events(await client.last_event_id()),
                                           name="demo-guard-events")
            await ctl.mark_price(ENTRY)
            await ctl.fill("BUY", QTY)
            tl.add("exchange", f"long {QTY} {SYMBOL} @ {ENTRY} opened")
            stop = await bot.create_stop(SYMBOL, "SELL", QTY, FIRST_STOP, "ts-stop-1")
            tl.add("bot", f"stop-loss {FIRST_STOP} placed")
            if not await wait_async(lambda: field_is(client, position, "protection", "covered"), 15):
                raise DemoFailed("the watchdog never published the position as covered", log_path)
            tl.add("watchdog", f"{SYMBOL}:BOTH protection=covered")
            await bot.cancel_stop(int(stop.body["algoId"]))
            forgot_at.append(tl.add("bot", "restarts, loses its state: the stop is cancelled and "
                                           "never placed again"))
            if await wait_async(flag(lambda: "guard_stop_placed" in seen), 30):
                result.guard_stop_placed_ms = seen["guard_stop_placed"] - forgot_at[0]
            if "position_unprotected" in seen:
                result.forgotten_stop_alert_ms = seen["position_unprotected"] - forgot_at[0]
            ours = [o for o in await ctl.open_stops()
                    if str(o.get("clientAlgoId", "")).startswith(GUARD_CLIENT_ID_PREFIX)]
            tl.add("exchange", f"{len(ours)} watchdog stop(s) protect the position: "
                   + ", ".join(f"{o.get('orderType')} closePosition@{o.get('triggerPrice')}" for o in ours))
            await bot.create_stop(SYMBOL, "SELL", QTY, FIRST_STOP, "ts-stop-2")
            tl.add("bot", f"back: places its own stop-loss {FIRST_STOP} again")
            result.guard_stop_removed = await wait_async(
                flag(lambda: "guard_stop_removed" in seen), 20)
            left = [o for o in await ctl.open_stops()
                    if str(o.get("clientAlgoId", "")).startswith(GUARD_CLIENT_ID_PREFIX)]
            tl.add("exchange", f"{len(left)} watchdog stop(s) left; the bot's own stop protects the position")
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            await bot.aclose()
            await client.close()
            result.timeline["forgotten_stop"] = tl.lines
