"""The BASUSDT incident, replayed twice against the simulator: without and with the watchdog.

Script (prices and sizes from docs/INCIDENT.md): a long of 1216 BASUSDT at 0.00832684 with a
reduce-only stop at 0.00771 and a take-profit; the bot's software trailing stop moves the stop by
cancel + create. Then the private stream goes quiet and REST lags, the stop fires, and the bot —
still believing in the position — moves its stop again.

(a) Without the watchdog the bot cancels, cannot find the position, falls back to its remembered
    quantity and creates a stop for a position that no longer exists; the next move fails with
    -2021, and the take-profit is left behind too.
(b) With the watchdog the bot asks first (begin / confirm): it is vetoed, creates nothing, drops
    its trailing stop when told the position closed, and the reaper removes the orphaned
    take-profit. Its trailing moves are zero-gap (``replace_stop``: the new stop is placed and
    confirmed before the old one is cancelled), so no instant is unprotected, and the watchdog
    knows of the stop firing from the public mark price it follows (trigger watching, issue 13)
    before any REST poll.
(c) The bot "forgets" its stop (a restart that lost its state cancels it and places nothing):
    the watchdog's guard notices on its own (``position_unprotected`` after
    ``[guard] unprotected_alert_ms``), places its last-resort closePosition stop (the guard is
    switched on for this step), and removes it once the bot's own stop is back (docs/GUARD.md).

Scenarios (a) and (b) and the run live here; (c) in ``forgotten_stop.py``; the prices, delays and
plumbing they share in ``script.py``; the result and its summary in ``result.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from poswatch.client import AsyncWatchdogClient, Vetoed
from watchdog.demo.bot import BotExchange
from watchdog.demo.forgotten_stop import scenario_forgotten_stop
from watchdog.demo.processes import redis_server, watchdog_daemon
from watchdog.demo.result import DemoResult
from watchdog.demo.script import (
    BOT_REACTION_S,
    CANCEL_TO_CREATE_S,
    CRASH,
    ENTRY,
    FIRST_STOP,
    HOLD_S,
    LOOKUP_DELAYS_S,
    NEXT_STOP,
    PEAK,
    QTY,
    REST_LAG_MS,
    STALE_STOP,
    SYMBOL,
    TAKE_PROFIT,
    TRAILED_STOP,
    DemoFailed,
    SimControl,
    demo_config,
    flag,
    no_stops,
    state_is,
    wait_async,
    watchdog_actors,
)
from watchdog.demo.timeline import Timeline
from watchdog.sim import Simulator, run_simulator

__all__ = ["run_demo", "scenario_with_watchdog", "scenario_without_watchdog"]


async def _open_position(ctl: SimControl, bot: BotExchange, tl: Timeline) -> tuple[int, int]:
    await ctl.mark_price(ENTRY)
    await ctl.fill("BUY", QTY)
    tl.add("exchange", f"long {QTY} {SYMBOL} @ {ENTRY} opened")
    stop = await bot.create_stop(SYMBOL, "SELL", QTY, FIRST_STOP, "ts-stop-1")
    tp = await bot.create_tp(SYMBOL, "SELL", QTY, TAKE_PROFIT, "ts-tp-1")
    tl.add("bot", f"stop-loss {FIRST_STOP} and take-profit {TAKE_PROFIT} placed (reduce-only algo orders)")
    return int(stop.body["algoId"]), int(tp.body["algoId"])


async def _crash(ctl: SimControl, tl: Timeline) -> int:
    await ctl.faults(stream="mute", rest_lag_ms=REST_LAG_MS)
    tl.add("exchange", f"private stream goes quiet (muted); REST answers lag {REST_LAG_MS} ms")
    await ctl.mark_price(CRASH)
    closed_at = tl.add("exchange", f"mark {CRASH}: stop {TRAILED_STOP} fires, position closed, no event sent")
    if await ctl.position_amount() != 0:
        tl.add("exchange", "unexpected: the position is still open after the trigger")
    return closed_at


async def scenario_without_watchdog(sim: Simulator, ctl: SimControl, result: DemoResult, echo: bool) -> None:
    tl = Timeline("(a) the bot alone — the incident as it happened", echo=echo)
    tl.header()
    bot = BotExchange(sim.rest_url, sim.api_key, sim.api_secret)
    try:
        stop_id, _ = await _open_position(ctl, bot, tl)
        await ctl.mark_price(PEAK)
        tl.add("exchange", f"mark {PEAK}")
        await bot.cancel_stop(stop_id)
        answer = await bot.create_stop(SYMBOL, "SELL", QTY, TRAILED_STOP, "ts-stop-2")
        stop_id = int(answer.body["algoId"])
        tl.add("bot", f"trailing stop moved to {TRAILED_STOP} (cancel + create)")
        await asyncio.sleep(HOLD_S)  # scripted: the position runs for a while
        await _crash(ctl, tl)

        # The bot's lagging feed still shows a new high: it moves its stop, with the incident's
        # own delays (scripted time, not synchronisation).
        await asyncio.sleep(BOT_REACTION_S)
        move_started = asyncio.get_running_loop().time()
        cancel = await bot.cancel_stop(stop_id)
        tl.add("bot", f"trailing move: cancel old stop → {'ok' if cancel.ok else cancel.body}")
        await asyncio.sleep(LOOKUP_DELAYS_S[0])
        amount = await bot.position_amount(SYMBOL)
        if amount is None:
            tl.add("bot", "position not found on the exchange (attempt 1/2), retrying…")
            await asyncio.sleep(LOOKUP_DELAYS_S[1])
            amount = await bot.position_amount(SYMBOL)
        if amount is None:
            amount = QTY
            tl.add("bot", f"cache and API lookup failed: database fallback quantity={QTY}")
            await asyncio.sleep(LOOKUP_DELAYS_S[2])
        created = await bot.create_stop(SYMBOL, "SELL", amount, STALE_STOP, "ts-stop-3")
        # The incident's window: from the cancel to the create's answer (lookups and fallback).
        result.unprotected_window_without_watchdog_ms = round(
            (asyncio.get_running_loop().time() - move_started) * 1000)
        if created.ok:
            result.orphans_created_without_watchdog += 1
            stop_id = int(created.body["algoId"])
            tl.add("bot", f"new stop {STALE_STOP} created for a position that no longer exists → ORPHAN")
        else:
            tl.add("bot", f"create stop → {created.body}")

        nxt = await bot.create_stop(SYMBOL, "SELL", amount, NEXT_STOP, "ts-stop-4")
        if nxt.code == -2021:
            result.immediate_trigger_errors_without_watchdog += 1
        tl.add("bot", f"next trailing move to {NEXT_STOP} → {nxt.body}; keeps the old stop")
        left = await ctl.open_stops()
        result.orphans_left_without_watchdog = len(left) if await ctl.position_amount() == 0 else 0
        tl.add("exchange", f"position flat; {len(left)} reduce-only order(s) left on it: "
               + ", ".join(f"{o.get('orderType')}@{o.get('triggerPrice')}" for o in left))
    finally:
        await bot.aclose()
        result.timeline["without_watchdog"] = tl.lines


async def scenario_with_watchdog(sim: Simulator, ctl: SimControl, redis_url: str, result: DemoResult,
                                 echo: bool, log_path: Path) -> None:
    tl = Timeline("(b) the bot asks the watchdog first", echo=echo)
    tl.header()
    keys, position, client, bot = watchdog_actors(sim, redis_url)
    trailing_alive = True
    seen: dict[str, int] = {}

    async def follow_events() -> None:
        nonlocal trailing_alive
        async for event in client.subscribe(last_id="0-0", block_ms=200):
            if event.fields.get("position", SYMBOL + ":BOTH").split(":")[0] != SYMBOL:
                continue
            kind = event.kind
            if kind in ("position_closed", "orphan_removed", "trailing_stop_orphaned", "alert",
                        "stream_blind", "veto", "stop_crossed"):
                at_ms = tl.add("watchdog", f"event {kind} {_describe(event.fields)}".rstrip())
                if kind in ("position_closed", "stop_crossed"):
                    seen.setdefault(f"{kind}_at_ms", at_ms)
            seen[kind] = seen.get(kind, 0) + 1
            if kind == "orphan_removed":
                result.orphans_removed_by_watchdog += 1
            if kind in ("position_closed", "trailing_stop_orphaned") and trailing_alive:
                trailing_alive = False
                result.trailing_stop_dropped = True
                tl.add("bot", f"drops its in-memory trailing stop ({kind})")

    async with watchdog_daemon(demo_config(sim, redis_url), sim.api_key, sim.api_secret, log_path) as daemon:
        try:
            if not await wait_async(lambda: client.redis.exists(keys.health), 20):
                raise DemoFailed("the watchdog did not come up within 20 s", log_path)
            tl.add("watchdog", f"running (pid {daemon.pid}): own stream + REST polls, publishing to Redis")
            follower = asyncio.create_task(follow_events(), name="demo-events")
            stop_id, _ = await _open_position(ctl, bot, tl)
            if not await wait_async(lambda: state_is(client, position, "open"), 10):
                raise DemoFailed("the watchdog never published the position as open", log_path)
            tl.add("watchdog", f"{SYMBOL}:BOTH state=open")
            await ctl.mark_price(PEAK)
            tl.add("exchange", f"mark {PEAK}")
            try:
                moved = await client.replace_stop(
                    SYMBOL, "BOTH", holder="demo-bot",
                    create=lambda: _created_id(bot.create_stop(SYMBOL, "SELL", QTY, TRAILED_STOP,
                                                               "ts-stop-2")),
                    cancel_new=lambda new_id: bot.cancel_stop(new_id),
                    cancel_old=lambda: bot.cancel_stop(stop_id))
                stop_id = moved.new_stop
                result.unprotected_window_ms = moved.ended.window_ms
                result.zero_gap_move = moved.ended.window_ms == 0
                tl.add("bot", f"trailing stop moved to {TRAILED_STOP} with no gap (begin → create "
                       f"new → confirm → cancel old → end; unprotected {moved.ended.window_ms} ms)")
            except Vetoed as exc:
                tl.add("bot", f"unexpected veto while the position is open: {exc}")

            # The position runs for a while before the crash, as the incident's did (the demo
            # compresses minutes into seconds; the watchdog distrusts a REST "flat" that comes
            # within [core] max_rest_lag_ms of the last stream fact, so the hold exceeds it).
            await asyncio.sleep(HOLD_S)
            tl.add("exchange", f"the position has been open {HOLD_S:.1f} s")
            closed_at = await _crash(ctl, tl)
            await asyncio.sleep(BOT_REACTION_S)  # the same script as (a)
            await _guarded_move(client, bot, stop_id, result, tl, lambda: trailing_alive)

            if await wait_async(lambda: state_is(client, position, "closed"), 15):
                seen_at = seen.get("position_closed_at_ms")
                result.closure_detected_ms = None if seen_at is None else seen_at - closed_at
            crossed_at = seen.get("stop_crossed_at_ms")
            if crossed_at is not None:
                result.closure_suspected_ms = crossed_at - closed_at
            if result.closure_detected_ms is not None:
                result.closure_detected_by = "price_stream" if crossed_at is not None else "rest_poll"
            await wait_async(flag(lambda: not trailing_alive), 10)
            if trailing_alive:
                tl.add("bot", "was never told to drop its trailing stop")
            # The reaper removes the orphaned take-profit after the grace period.
            await wait_async(no_stops(ctl), 15)
            result.orphans_left_with_watchdog = len(await ctl.open_stops())
            tl.add("exchange", f"position flat; {result.orphans_left_with_watchdog} order(s) left on it")
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        finally:
            await bot.aclose()
            await client.close()
            result.timeline["with_watchdog"] = tl.lines


async def _created_id(answer: Any) -> int:
    """The algoId of a stop the bot created (raises if the exchange refused it)."""
    created = await answer
    if not created.ok:
        raise RuntimeError(f"the exchange refused the new stop: {created.body}")
    return int(created.body["algoId"])


def _describe(fields: dict[str, str]) -> str:
    """The few fields of a watchdog event a person reads in a timeline."""
    if "trigger_price" in fields:  # stop_crossed
        return (f"price {fields.get('price')} crossed the trigger {fields['trigger_price']} of "
                f"algo order {fields.get('order_id')}: position unknown until REST")
    if "order_id" in fields:
        kind = "algo order" if fields.get("algo") == "1" else "order"
        return f"{kind} {fields['order_id']} ({fields.get('client_id', '')}) {fields.get('outcome', '')}"
    return fields.get("code") or fields.get("reason") or ""


async def _guarded_move(client: AsyncWatchdogClient, bot: BotExchange, stop_id: int, result: DemoResult,
                        tl: Timeline, alive: Any) -> None:
    """The bot's next trailing move, the way a bot using the watchdog makes it."""
    if not alive():
        tl.add("bot", "trailing stop already dropped; nothing to move")
        return
    try:
        async with client.guard_stop_update(SYMBOL, holder="demo-bot") as guard:
            tl.add("bot", f"trailing move: begin → allow (lease {guard.lease}), the watchdog"
                   " does not know yet")
            cancel = await bot.cancel_stop(stop_id)
            tl.add("bot", f"cancel old stop → {'ok' if cancel.ok else cancel.body}")
            await asyncio.sleep(CANCEL_TO_CREATE_S)  # where the incident bot looked up + fell back
            verdict = await guard.confirm()
            tl.add("bot", f"confirm → allow ({verdict.reason}); creating {STALE_STOP}")
            created = await bot.create_stop(SYMBOL, "SELL", QTY, STALE_STOP, "ts-stop-3")
            if created.code == -2021:
                result.immediate_trigger_errors_with_watchdog += 1
            tl.add("bot", f"create → {'ok' if created.ok else created.body}")
    except Vetoed as exc:
        result.vetoes += 1
        tl.add("bot", f"{exc.op} → VETO ({exc.verdict.reason}): the bot leaves its stop alone")


async def run_demo(*, echo: bool = True) -> DemoResult:
    """Both scenarios on one simulator and one private redis-server; everything is cleaned up."""
    result = DemoResult()
    with tempfile.TemporaryDirectory(prefix="wd-demo-logs-") as logs:
        async with redis_server() as redis_url, run_simulator(symbols=("BTCUSDT", "BASUSDT")) as sim:
            ctl = SimControl(sim.control_url)
            try:
                await scenario_without_watchdog(sim, ctl, result, echo)
                await ctl.reset()
                await scenario_with_watchdog(sim, ctl, redis_url, result, echo, Path(logs) / "watchdog.log")
                await ctl.reset()
                await scenario_forgotten_stop(sim, ctl, redis_url, result, echo,
                                              Path(logs) / "watchdog-guard.log")
            finally:
                await ctl.aclose()
    return result


