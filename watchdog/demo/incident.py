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
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from poswatch.client import AsyncWatchdogClient, Vetoed
from watchdog.core.guard import GUARD_CLIENT_ID_PREFIX
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.demo.bot import BotExchange
from watchdog.demo.processes import redis_server, watchdog_daemon
from watchdog.demo.timeline import Timeline
from watchdog.sim import Simulator, run_simulator
from watchdog.store.keys import AccountKeys

__all__ = ["DemoFailed", "DemoResult", "render_summary", "run_demo"]

SYMBOL = "BASUSDT"
QTY = Decimal("1216")
ENTRY = Decimal("0.00832684")
FIRST_STOP = Decimal("0.00771")
TAKE_PROFIT = Decimal("0.00900")
PEAK = Decimal("0.00840")
TRAILED_STOP = Decimal("0.00831600")
CRASH = Decimal("0.00831168")          # mark price that fires the trailed stop
STALE_STOP = Decimal("0.00829353")     # what the incident bot created for the closed position
NEXT_STOP = Decimal("0.00831500")      # above the mark: -2021, as in the incident
REST_LAG_MS = 300
# The bot's trailing move starts 50 ms after the stop fired (its feed lags); then the incident's
# own delays: position lookups 296 ms and 795 ms after the cancel, the create at 1090 ms.
BOT_REACTION_S = 0.05
LOOKUP_DELAYS_S = (0.296, 0.499, 0.295)
CANCEL_TO_CREATE_S = sum(LOOKUP_DELAYS_S)
HOLD_S = 2.5
ACCOUNT = "demo"


class DemoFailed(RuntimeError):
    """The watchdog did not do its part; the message carries the tail of its log."""

    def __init__(self, what: str, log_path: Path) -> None:
        try:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        except OSError as exc:
            tail = f"(no log: {exc})"
        super().__init__(f"{what}; last lines of its log:\n{tail}")


@dataclass
class DemoResult:
    """The demo's summary; ``as_json`` is the contract of ``position-watchdog demo --json``."""

    closure_detected_ms: int | None = None
    vetoes: int = 0
    orphans_created_without_watchdog: int = 0
    orphans_left_without_watchdog: int = 0
    orphans_left_with_watchdog: int | None = None
    orphans_removed_by_watchdog: int = 0
    immediate_trigger_errors_without_watchdog: int = 0
    immediate_trigger_errors_with_watchdog: int = 0
    trailing_stop_dropped: bool = False
    unprotected_window_ms: int | None = None
    unprotected_window_without_watchdog_ms: int | None = None
    zero_gap_move: bool = False
    closure_suspected_ms: int | None = None  # stop_crossed (price stream) after the stop fired
    closure_detected_by: str | None = None   # "price_stream" or "rest_poll"
    forgotten_stop_alert_ms: int | None = None      # (c) cancel → position_unprotected
    guard_stop_placed_ms: int | None = None         # (c) cancel → guard_stop_placed
    guard_stop_removed: bool = False                # (c) removed once the bot's stop was back
    timeline: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)

    @property
    def incident_prevented(self) -> bool:
        return (self.orphans_left_with_watchdog == 0 and self.vetoes >= 1
                and self.trailing_stop_dropped and self.immediate_trigger_errors_with_watchdog == 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "incident_prevented": self.incident_prevented,
            "closure_detected_ms": self.closure_detected_ms,
            "vetoes": self.vetoes,
            "orphans_created_without_watchdog": self.orphans_created_without_watchdog,
            "orphans_left_without_watchdog": self.orphans_left_without_watchdog,
            "orphans_left_with_watchdog": self.orphans_left_with_watchdog,
            "orphans_removed_by_watchdog": self.orphans_removed_by_watchdog,
            "immediate_trigger_errors_without_watchdog": self.immediate_trigger_errors_without_watchdog,
            "immediate_trigger_errors_with_watchdog": self.immediate_trigger_errors_with_watchdog,
            "trailing_stop_dropped": self.trailing_stop_dropped,
            "unprotected_window_ms": self.unprotected_window_ms,
            "unprotected_window_without_watchdog_ms": self.unprotected_window_without_watchdog_ms,
            "zero_gap_move": self.zero_gap_move,
            "closure_suspected_ms": self.closure_suspected_ms,
            "closure_detected_by": self.closure_detected_by,
            "forgotten_stop_alert_ms": self.forgotten_stop_alert_ms,
            "guard_stop_placed_ms": self.guard_stop_placed_ms,
            "guard_stop_removed": self.guard_stop_removed,
            "timeline": {name: [{"t_ms": t, "actor": a, "what": w} for t, a, w in lines]
                         for name, lines in self.timeline.items()},
        }


class SimControl:
    """The simulator's public control API (``/sim/v1``), as operators and tests use it."""

    def __init__(self, control_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=control_url, timeout=httpx.Timeout(5.0))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, doc: dict[str, Any]) -> None:
        response = await self._http.post(path, json=doc)
        response.raise_for_status()

    async def mark_price(self, price: Decimal) -> None:
        await self._post("/mark-price", {"symbol": SYMBOL, "price": str(price)})

    async def fill(self, side: str, qty: Decimal) -> None:
        await self._post("/fills", {"symbol": SYMBOL, "side": side, "qty": str(qty)})

    async def faults(self, **faults: Any) -> None:
        await self._post("/faults", faults)

    async def reset(self) -> None:
        await self._post("/reset", {})

    async def _account(self) -> dict[str, Any]:
        response = await self._http.get("/state")
        response.raise_for_status()
        account: dict[str, Any] = response.json()["accounts"][0]
        return account

    async def open_stops(self) -> list[dict[str, Any]]:
        """Open algo orders on the demo symbol, as the exchange holds them."""
        return [o for o in (await self._account())["open_algo_orders"] if o.get("symbol") == SYMBOL]

    async def position_amount(self) -> Decimal:
        for row in (await self._account())["positions"]:
            if row["symbol"] == SYMBOL and row["position_side"] == "BOTH":
                return Decimal(row["amount"])
        return Decimal(0)


def _no_stops(ctl: SimControl) -> Any:
    async def probe() -> bool:
        return not await ctl.open_stops()
    return probe


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


def _demo_config(sim: Simulator, redis_url: str) -> str:
    return (f'[binance]\nrest_url = "{sim.rest_url}"\nws_url = "{sim.ws_url}"\n\n'
            f'[redis]\nurl = "{redis_url}"\naccount = "{ACCOUNT}"\nheartbeat_interval_s = 0.5\n')


async def scenario_with_watchdog(sim: Simulator, ctl: SimControl, redis_url: str, result: DemoResult,
                                 echo: bool, log_path: Path) -> None:
    tl = Timeline("(b) the bot asks the watchdog first", echo=echo)
    tl.header()
    keys = AccountKeys(ACCOUNT)
    position = keys.position(PositionKey(Symbol(SYMBOL), PositionSide.BOTH))
    client = AsyncWatchdogClient.from_url(redis_url, ACCOUNT)
    bot = BotExchange(sim.rest_url, sim.api_key, sim.api_secret)
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

    async with watchdog_daemon(_demo_config(sim, redis_url), sim.api_key, sim.api_secret, log_path) as daemon:
        try:
            if not await _wait_async(lambda: client.redis.exists(keys.health), 20):
                raise DemoFailed("the watchdog did not come up within 20 s", log_path)
            tl.add("watchdog", f"running (pid {daemon.pid}): own stream + REST polls, publishing to Redis")
            follower = asyncio.create_task(follow_events(), name="demo-events")
            stop_id, _ = await _open_position(ctl, bot, tl)
            if not await _wait_async(lambda: _state_is(client, position, "open"), 10):
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

            if await _wait_async(lambda: _state_is(client, position, "closed"), 15):
                seen_at = seen.get("position_closed_at_ms")
                result.closure_detected_ms = None if seen_at is None else seen_at - closed_at
            crossed_at = seen.get("stop_crossed_at_ms")
            if crossed_at is not None:
                result.closure_suspected_ms = crossed_at - closed_at
            if result.closure_detected_ms is not None:
                result.closure_detected_by = "price_stream" if crossed_at is not None else "rest_poll"
            await _wait_async(_flag(lambda: not trailing_alive), 10)
            if trailing_alive:
                tl.add("bot", "was never told to drop its trailing stop")
            # The reaper removes the orphaned take-profit after the grace period.
            await _wait_async(_no_stops(ctl), 15)
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


GUARD_ALERT_MS = 3000  # [guard] unprotected_alert_ms, the default
GUARD_AFTER_MS = 5000
GUARD_PCT = "2.0"


async def scenario_forgotten_stop(sim: Simulator, ctl: SimControl, redis_url: str,
                                  result: DemoResult, echo: bool, log_path: Path) -> None:
    """(c): the guard notices a forgotten stop and, switched on, protects the position."""
    tl = Timeline("(c) the bot forgets its stop — the watchdog's guard", echo=echo)
    tl.header()
    keys = AccountKeys(ACCOUNT)
    position = keys.position(PositionKey(Symbol(SYMBOL), PositionSide.BOTH))
    client = AsyncWatchdogClient.from_url(redis_url, ACCOUNT)
    bot = BotExchange(sim.rest_url, sim.api_key, sim.api_secret)
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

    config = (_demo_config(sim, redis_url) + f"\n[guard]\nemergency_stop_pct = {GUARD_PCT}\n"
              f"emergency_after_ms = {GUARD_AFTER_MS}\n")
    async with watchdog_daemon(config, sim.api_key, sim.api_secret, log_path):
        follower: asyncio.Task[None] | None = None
        try:
            if not await _wait_async(lambda: _field_is(client, keys.health, "ready", "true"), 30):
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
            if not await _wait_async(lambda: _field_is(client, position, "protection", "covered"), 15):
                raise DemoFailed("the watchdog never published the position as covered", log_path)
            tl.add("watchdog", f"{SYMBOL}:BOTH protection=covered")
            await bot.cancel_stop(int(stop.body["algoId"]))
            forgot_at.append(tl.add("bot", "restarts, loses its state: the stop is cancelled and "
                                           "never placed again"))
            if await _wait_async(_flag(lambda: "guard_stop_placed" in seen), 30):
                result.guard_stop_placed_ms = seen["guard_stop_placed"] - forgot_at[0]
            if "position_unprotected" in seen:
                result.forgotten_stop_alert_ms = seen["position_unprotected"] - forgot_at[0]
            ours = [o for o in await ctl.open_stops()
                    if str(o.get("clientAlgoId", "")).startswith(GUARD_CLIENT_ID_PREFIX)]
            tl.add("exchange", f"{len(ours)} watchdog stop(s) protect the position: "
                   + ", ".join(f"{o.get('orderType')} closePosition@{o.get('triggerPrice')}" for o in ours))
            await bot.create_stop(SYMBOL, "SELL", QTY, FIRST_STOP, "ts-stop-2")
            tl.add("bot", f"back: places its own stop-loss {FIRST_STOP} again")
            result.guard_stop_removed = await _wait_async(
                _flag(lambda: "guard_stop_removed" in seen), 20)
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


async def _field_is(client: AsyncWatchdogClient, key: str, name: str, value: str) -> bool:
    got = await client.redis.hget(key, name)
    return got is not None and (got.decode() if isinstance(got, bytes) else got) == value


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


def _flag(predicate: Any) -> Any:
    async def probe() -> bool:
        return bool(predicate())
    return probe


async def _wait_async(probe: Any, timeout_s: float) -> bool:
    """Wait for a condition with a deadline; False (not an exception) when it never held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await probe():
            return True
        await asyncio.sleep(0.02)
    return False


async def _state_is(client: AsyncWatchdogClient, key: str, state: str) -> bool:
    value = await client.redis.hget(key, "state")
    return value is not None and (value.decode() if isinstance(value, bytes) else value) == state


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


def render_summary(result: DemoResult) -> str:
    """The closing block of the human-readable demo output."""
    verdict = "PREVENTED" if result.incident_prevented else "NOT PREVENTED"
    rows = [
        ("stops created for a closed position, bot alone", result.orphans_created_without_watchdog),
        ("reduce-only orders left on the flat position, bot alone", result.orphans_left_without_watchdog),
        ("-2021 'would immediately trigger', bot alone", result.immediate_trigger_errors_without_watchdog),
        ("closure known to the watchdog after (ms, stream muted)", result.closure_detected_ms),
        ("  stop firing seen on the price stream after (ms)", result.closure_suspected_ms),
        ("  first known from", result.closure_detected_by),
        ("vetoes given to the bot", result.vetoes),
        ("orphans removed by the watchdog", result.orphans_removed_by_watchdog),
        ("orders left on the flat position, with the watchdog", result.orphans_left_with_watchdog),
        ("bot told to drop its trailing stop", "yes" if result.trailing_stop_dropped else "no"),
        ("bot's unprotected window while moving its stop, alone (ms)",
         result.unprotected_window_without_watchdog_ms),
        ("bot's unprotected window while moving its stop, zero-gap (ms)", result.unprotected_window_ms),
        ("forgotten stop: position_unprotected after (ms)", result.forgotten_stop_alert_ms),
        ("forgotten stop: watchdog's last-resort stop after (ms)", result.guard_stop_placed_ms),
        ("watchdog's stop removed once the bot's was back", "yes" if result.guard_stop_removed else "no"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["", "=== summary ==="] + [f"  {label:<{width}}  {value}" for label, value in rows]
    lines.append(f"  incident {verdict}")
    return "\n".join(lines)
