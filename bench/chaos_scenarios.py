"""The chaos suite's named scenarios (docs/RELIABILITY.md, "Chaos suite").

Each scenario drives the simulator, Redis, the daemon and bots the way the market, an operator
and trading bots would, at the daemon's DEFAULT settings (only the URLs are set) unless it names
its own. Waits are on conditions with deadlines; a few steps are scripted time (how long a fault
lasts, when an entry fills), never synchronisation. Besides the five invariants the rig judges
after every scenario, a scenario may state a goal of its own from issue 12 ("goal: …").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis.asyncio
from chaos_rig import (
    ACCOUNT,
    BOUNDS,
    GUARD_PREFIX,
    PYTHON,
    ChaosFailure,
    Daemon,
    K,
    Rig,
    _env,
    config_text,
    now_ms,
)

from poswatch.client import Vetoed

__all__ = ["SCENARIOS", "Spec"]

BAS, BTC, ETH = "BASUSDT", "BTCUSDT", "ETHUSDT"
TRIALS = 5  # reaper_race
GRACE_S = 2.0  # [reaper] grace_ms default
MAX_REST_LAG_S = 2.0  # [core] max_rest_lag_ms default
# Issue 12, Deliver 1 asked for grace + 2 s (4 s), but the same issue makes a REST "flat" prove
# flatness only as of its request time minus max_rest_lag_ms: the honest floor is grace + lag
# (4 s) after the first flat read, itself up to one poll after the close. The bound held here is
# the one docs/RELIABILITY.md states: grace + lag + 1.5 s (one poll and the cancel's round trips).
ORPHAN_S = GRACE_S + MAX_REST_LAG_S + 1.5
ORDERS_POLL_S = 5.0  # [binance] orders_poll_interval_s default
ONE_WAY = [(BAS, "BOTH"), (BTC, "BOTH"), (ETH, "BOTH")]
HEDGE = [(BTC, "LONG"), (BTC, "SHORT")]
HOLD_S = 2.5  # scripted: how long a position is held before a scenario closes it (> max_rest_lag_ms)
LATE_S = 15.0  # how long past a missed bound a scenario keeps watching, to report the real figure


@dataclass(frozen=True)
class Spec:
    name: str
    body: Callable[[Rig], Awaitable[None]]
    what: str
    keys: tuple[tuple[str, str], ...] = tuple(ONE_WAY)
    sim_args: tuple[str, ...] = ()
    start: bool = True


SCENARIOS: list[Spec] = []


Body = Callable[[Rig], Awaitable[None]]


def scenario(what: str, *, keys: list[tuple[str, str]] = ONE_WAY, sim_args: tuple[str, ...] = (),
             start: bool = True) -> Callable[[Body], Body]:
    def register(fn: Body) -> Body:
        SCENARIOS.append(Spec(fn.__name__, fn, what, tuple(keys), sim_args, start))
        return fn
    return register


# ---------------------------------------------------------------------------- helpers


async def veto_reason(r: Rig, symbol: str, side: str = "BOTH") -> str:
    verdict = await r.wd.check(symbol, side)
    return "allow" if verdict.allowed else verdict.reason


async def closure_known(r: Rig, symbol: str, timeout_s: float, side: str = "BOTH") -> float | None:
    """Seconds until a bot's check answers position_closed (a goal when bounded)."""
    async def probe() -> bool:
        return await veto_reason(r, symbol, side) == "position_closed"
    label = f"{symbol}:{side} vetoed position_closed"
    started = time.monotonic()
    try:
        await r.until(label, probe, timeout_s=timeout_s + LATE_S)
    except ChaosFailure:
        r.result.fail(f"goal: {label}: not within {timeout_s + LATE_S:.0f} s (bound {timeout_s:.1f} s)")
        return None
    took = time.monotonic() - started
    r.result.figures["closure_known_s"] = round(took, 2)
    if took > timeout_s:
        r.result.fail(f"goal: {label} after {took:.1f} s (bound {timeout_s:.1f} s)")
    return took


async def orphan_removed(r: Rig, stop: int, bound_s: float, label: str = "orphan stop removed", *,
                         since: float | None = None) -> float | None:
    """Seconds from ``since`` (monotonic; default now) until the stop is gone. Past the bound the
    goal fails and the wait goes on up to ``LATE_S`` more, so the report says how late it was."""
    since = time.monotonic() if since is None else since
    try:
        left = max(bound_s - (time.monotonic() - since), 0.0)
        await r.until(label, lambda: r.stop_gone(stop), timeout_s=left + LATE_S)
    except ChaosFailure:
        r.result.fail(f"goal: {label}: still there {bound_s + LATE_S:.0f} s later (bound {bound_s:.1f} s)")
        return None
    took = time.monotonic() - since
    r.result.figures["orphan_removed_s"] = round(took, 2)
    if took > bound_s:
        r.result.fail(f"goal: {label} after {took:.1f} s (bound {bound_s:.1f} s)")
    return took


async def gone_within(r: Rig, stop: int, seconds: float) -> bool:
    """Watch ``stop`` for ``seconds``: True as soon as the exchange no longer lists it."""
    try:
        await r.until(f"stop {stop} gone", lambda: r.stop_gone(stop), timeout_s=seconds, interval_s=0.1)
    except ChaosFailure:
        return False
    return True


async def cancel_restored(r: Rig, stop: int) -> None:
    """The bot drops the stop the reaper put back for ``stop`` (``protection_restored`` names it)
    before the next trial, so no trial inherits the last one's stop. The reaper clears its
    ``reaping`` marker only once its removal is over (restore included)."""
    async def done() -> bool:
        return not await r.r.exists(f"{K}:reaping:{ETH}:BOTH")
    await r.until("the reaper's removal is over", done, timeout_s=15)
    for algo in (await r.sim.account())["open_algo_orders"]:
        client_id = algo.get("clientAlgoId", "")
        if client_id.startswith("wd-rs-") and client_id.endswith(str(stop)[-30:]):
            await r.bot.cancel(int(algo["algoId"]))


def late(took: float | None) -> str:
    return "never" if took is None else f"{took:.2f}s"


def figure(r: Rig, text: str) -> None:
    r.result.figure = text


def fig_or_fail(r: Rig, name: str) -> str:
    value = r.result.figures.get(name)
    return f"{value:.2f}s" if isinstance(value, float) else "-"


async def muted_close_with_orphan(r: Rig, faults: dict[str, Any], *, close: str = "fill",
                                  after_close_stop: bool = False, bound_s: float = ORPHAN_S,
                                  symbol: str = BAS, qty: str = "1216") -> None:
    """Open with a stop, apply ``faults``, close the position, expect the stop gone in time."""
    stop = await r.open_with_stop(symbol, qty)
    # The position is held longer than [core] max_rest_lag_ms before it closes (as the demo
    # does): a REST "flat" within that bound of the last stream fact is distrusted by design.
    await asyncio.sleep(HOLD_S)
    await r.sim.faults(**faults)
    if close == "fill":
        await r.sim.fill(symbol, "SELL", qty)
    elif close in ("liquidation", "adl"):
        await r.sim.control("POST", "liquidate", {"symbol": symbol, "kind": close})
    elif close == "liquidation_silent":
        await r.sim.control("POST", "liquidate", {"symbol": symbol, "account_update": False})
    closed = time.monotonic()
    if after_close_stop:  # the incident's mistake: a stop placed for the closed position
        price = await r.sim.price(symbol)
        stop = await r.bot.stop(symbol, "SELL", qty, price * Decimal("0.97"), client_id="stale-db-stop")
        closed = time.monotonic()
    await closure_known(r, symbol, 5.0 + r.extra_lag_s)
    took = await orphan_removed(r, stop, bound_s, since=closed)
    figure(r, f"closure {fig_or_fail(r, 'closure_known_s')}, orphan {late(took)} (bound {bound_s:.1f}s)")


# ---------------------------------------------------------------------------- baseline


@scenario("stream live: the position closes, its stop is removed within grace + lag + 1.5 s")
async def baseline_close_live(r: Rig) -> None:
    await muted_close_with_orphan(r, {})


@scenario("stream live: the incident's stop placed after the close is removed")
async def baseline_orphan_after_close_live(r: Rig) -> None:
    await muted_close_with_orphan(r, {}, after_close_stop=True)


# ---------------------------------------------------------------------------- stream faults


@scenario("stream muted, the position closes: closure and orphan removal (Deliver 1)")
async def stream_mute_close(r: Rig) -> None:
    await muted_close_with_orphan(r, {"stream": "mute"})


@scenario("stream muted, the bot places a stop after the close (the incident, Deliver 1)")
async def stream_mute_orphan_after_close(r: Rig) -> None:
    await muted_close_with_orphan(r, {"stream": "mute"}, after_close_stop=True)


@scenario("stream stalled (no frames, no pings), the position closes")
async def stream_stall_close(r: Rig) -> None:
    await muted_close_with_orphan(r, {"stream": "stall"})


@scenario("every connection aborted (1006) just before the position closes")
async def stream_disconnect_close(r: Rig) -> None:
    await muted_close_with_orphan(r, {"stream": "disconnect"})


@scenario("ACCOUNT_UPDATE never delivered, the position closes")
async def drop_account_update(r: Rig) -> None:
    await muted_close_with_orphan(r, {"drop_events": ["ACCOUNT_UPDATE"]})


@scenario("ORDER_TRADE_UPDATE and TRADE_LITE never delivered, the position closes")
async def drop_order_trade_update(r: Rig) -> None:
    await muted_close_with_orphan(r, {"drop_events": ["ORDER_TRADE_UPDATE", "TRADE_LITE"]})


@scenario("ALGO_UPDATE never delivered: a stop placed on a just-closed position is found by REST "
          "(bound: orders poll + grace + lag + 1.5 s)")
async def drop_algo_update(r: Rig) -> None:
    await r.sim.fill(ETH, "BUY", "1")  # a symbol the watchdog polls: it had a position
    await r.published(ETH, "open")
    await r.sim.fill(ETH, "SELL", "1")
    await r.published(ETH, "closed")
    await r.sim.faults(drop_events=["ALGO_UPDATE"])
    price = await r.sim.price(ETH)
    stop = await r.bot.stop(ETH, "SELL", "1", price * Decimal("0.95"))
    placed = time.monotonic()
    took = await orphan_removed(r, stop, ORDERS_POLL_S + ORPHAN_S, since=placed)
    figure(r, f"orphan {late(took)} (bound {ORDERS_POLL_S + ORPHAN_S:.1f}s)")


async def blind_alerts(r: Rig) -> int:
    return len([e for e in await r.events("alert") if e.get("code") == "stream_blind"])


async def status_json(r: Rig) -> tuple[int | None, dict[str, Any]]:
    """``position-watchdog status --json`` as an operator runs it: (exit code, report)."""
    cfg = r.workdir / "status.toml"
    cfg.write_text(f'[redis]\nurl = "{r.redis_proc.url}"\naccount = "{ACCOUNT}"\n')
    proc = await asyncio.create_subprocess_exec(PYTHON, "-m", "watchdog", "status", "--json", "--config",
                                                str(cfg), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=_env())
    out, err = await proc.communicate()
    try:
        doc: dict[str, Any] = json.loads(out)
    except ValueError:
        return proc.returncode, {"crashed": err.decode(errors="replace")[-300:]}
    return proc.returncode, doc


@scenario("stream muted, the position closes: after stream_blind the stream stays unproven and "
          "status --json says so (state not live, or proof unproven) and exits 1 while it is "
          "still muted (Deliver 2)")
async def stream_mute_unproven(r: Rig) -> None:
    await r.open_with_stop(BAS, "1216")
    await asyncio.sleep(HOLD_S)
    await r.sim.faults(stream="mute")
    await r.sim.fill(BAS, "SELL", "1216")
    await closure_known(r, BAS, 5.0)

    async def blind() -> bool:
        return await blind_alerts(r) > 0
    await r.within("stream_blind alert", blind, 5.0)
    await asyncio.sleep(3.0)  # scripted: the blind reconnect has happened; the stream is still muted
    code, doc = await status_json(r)
    stream = doc.get("stream") or {}
    state, proof = stream.get("state"), stream.get("proof")
    # docs/STATUS.md: `proof` = unproven (state may read live: a reconnect proves nothing)
    if code != 1 or (state == "live" and proof != "unproven"):
        r.result.fail(f"goal: still muted, status says stream {state!r} proof {proof!r}, exit {code} "
                      f"(expected unproven or not live, exit 1)")
    figure(r, f"3 s after stream_blind, still muted: stream {state}/{proof}, status exit {code}")


@scenario("ALGO_UPDATE and ORDER_TRADE_UPDATE dropped while ACCOUNT_UPDATE flows: an order REST sees "
          "and the stream never reported counts as blindness (Deliver 2; bound orders poll + 3 s)")
async def blind_to_order_events(r: Rig) -> None:
    await r.open_with_stop(BAS, "1216")
    await r.sim.faults(drop_events=["ALGO_UPDATE", "ORDER_TRADE_UPDATE", "TRADE_LITE"])
    price = await r.sim.price(BAS)
    await r.bot.stop(BAS, "SELL", "1216", price * Decimal("0.93"), client_id="unseen-by-stream")
    await r.sim.fill(BAS, "BUY", "1216")  # ACCOUNT_UPDATE still arrives

    async def blind() -> bool:
        return await blind_alerts(r) > 0
    took = await r.within("stream_blind alert", blind, ORDERS_POLL_S + 3.0)
    figure(r, f"stream_blind {late(took)} (bound {ORDERS_POLL_S + 3.0:.0f}s)")


@scenario("rotation onto a mute socket ([binance] rotate_after_s = 8, the scenario's own setting): "
          "the muted new connection must not replace the working one; a close is still seen by "
          "the stream (within 0.5 s; REST alone needs a poll)", start=False)
async def rotation_onto_mute_socket(r: Rig) -> None:
    r.write_config({"binance": {"rotate_after_s": 8.0}})
    await r.start_daemon()
    stop = await r.open_with_stop(BAS, "1216")
    await r.sim.faults(stream="mute_new")
    before = {c["id"] for c in (await r.sim.state())["connections"]}

    async def rotated() -> bool:
        return any(c["id"] not in before for c in (await r.sim.state())["connections"])
    await r.until("a rotation opened a new (muted) connection", rotated, timeout_s=30)
    await asyncio.sleep(HOLD_S)  # scripted: past the probation window of the new connection
    await r.sim.fill(BAS, "SELL", "1216")
    closed = time.monotonic()
    await closure_known(r, BAS, 0.5)
    took = await orphan_removed(r, stop, ORPHAN_S, since=closed)
    figure(r, f"closure {fig_or_fail(r, 'closure_known_s')} (bound 0.5s), orphan {late(took)}")


@scenario("every event 1.5 s late, the position closes (bound (a) + 1.5 s)")
async def delay_events(r: Rig) -> None:
    r.extra_lag_s = 1.5
    await muted_close_with_orphan(r, {"delay_events_ms": 1500}, bound_s=ORPHAN_S + 1.5)


@scenario("events swapped in pairs while positions open and close twice")
async def reorder_events(r: Rig) -> None:
    await r.sim.faults(reorder_events=True)
    for _ in range(2):
        await r.sim.fill(BTC, "BUY", "0.010")
        await r.sim.fill(ETH, "SELL", "1")
        await r.sim.fill(BTC, "SELL", "0.010")
        await r.sim.fill(ETH, "BUY", "1")
    await r.sim.fill(BAS, "BUY", "1216")
    await r.clear_faults()
    await r.published(BAS, "open")
    figure(r, "reordered fills converged")


@scenario("user-stream handshakes refused 503 five times after a disconnect; the position closes")
async def ws_handshake_errors(r: Rig) -> None:
    await muted_close_with_orphan(r, {"ws_handshake_errors": {"status": 503, "count": 5},
                                      "stream": "disconnect"})


@scenario("listen key expired (listenKeyExpired), then the position closes")
async def listen_key_expired(r: Rig) -> None:
    stop = await r.open_with_stop(BAS, "1216")
    await asyncio.sleep(HOLD_S)  # scripted: held longer than max_rest_lag_ms
    await r.sim.control("POST", "listen-key/expire", {})
    await r.sim.fill(BAS, "SELL", "1216")
    closed = time.monotonic()
    await closure_known(r, BAS, 5.0)
    took = await orphan_removed(r, stop, ORPHAN_S, since=closed)
    figure(r, f"closure {fig_or_fail(r, 'closure_known_s')}, orphan {late(took)} (bound {ORPHAN_S:.1f}s)")


@scenario("listen key expired every 0.5 s for 20 s (reconnect storm): weight within the share")
async def listen_key_expire_storm(r: Rig) -> None:
    await r.sim.fill(BAS, "BUY", "1216")
    await r.published(BAS, "open")
    ends = time.monotonic() + 20
    while time.monotonic() < ends:
        await r.sim.control("POST", "listen-key/expire", {})
        await asyncio.sleep(0.5)  # scripted: the storm's pace
    # the weight goal is every scenario's (chaos_rig.run_scenario); here it is the key figure
    figure(r, f"peak weight {r.weight.peak}/min (share {BOUNDS.weight_share})")


@scenario("algo orders stuck TRIGGERING: begin vetoes stop_triggered, the stop is not cancelled "
          "(Deliver 5)")
async def stuck_triggering(r: Rig) -> None:
    stop = await r.open_with_stop(BAS, "1216")
    await r.sim.faults(stuck_triggering=True)
    price = await r.sim.price(BAS)
    await r.sim.mark(BAS, price * Decimal("0.90"))  # the stop fires; no child order ever comes

    async def vetoed() -> bool:
        verdict = await r.wd.begin(BAS, "BOTH", holder="bot-stuck", ttl_ms=2000)
        if verdict.allowed and verdict.lease is not None:
            await r.wd.end(BAS, "BOTH", verdict.lease, "probe")
        return not verdict.allowed and verdict.reason == "stop_triggered"

    took = await r.within("begin vetoes stop_triggered", vetoed, 5.0)
    if stop in r.bot.cancelled:
        r.result.fail("harness: the bot cancelled the stop")
    figure(r, f"stop_triggered veto {'-' if took is None else f'{took:.2f}s'}")


# ---------------------------------------------------------------------------- REST faults


BURST_S = 5.0  # scripted: how long a burst of REST errors lasts


async def rest_burst(r: Rig, status: int, *, mute: bool) -> None:
    """Every REST call fails with ``status`` for ``BURST_S`` while the position closes; then the
    watchdog must catch up: closure within 5 s of the burst's end, the orphan grace + lag + 1.5 s later."""
    stop = await r.open_with_stop(BAS, "1216")
    await asyncio.sleep(HOLD_S)
    await r.sim.faults(rest_errors={"status": status, "count": 1_000_000},
                       **({"stream": "mute"} if mute else {}))
    await r.sim.fill(BAS, "SELL", "1216")
    closed = time.monotonic()
    await asyncio.sleep(BURST_S)
    await r.sim.faults(rest_errors=None)
    await closure_known(r, BAS, 5.0)
    took = await orphan_removed(r, stop, BURST_S + 5.0 + ORPHAN_S, since=closed)
    figure(r, f"closure {fig_or_fail(r, 'closure_known_s')} after the burst, orphan {late(took)} "
              f"(bound {BURST_S + 5.0 + ORPHAN_S:.0f}s)")


@scenario("every REST call answers 503 for 5 s while the stream is muted and the position closes")
async def rest_503_burst(r: Rig) -> None:
    await rest_burst(r, 503, mute=True)


@scenario("every REST call answers 504 (-1007 timeout) for 5 s while the position closes, stream live")
async def rest_504_burst(r: Rig) -> None:
    await rest_burst(r, 504, mute=False)


@scenario("every REST call answers 429 (-1003, Retry-After 1) for 5 s, muted close")
async def rest_429_burst(r: Rig) -> None:
    await rest_burst(r, 429, mute=True)


@scenario("every REST call answers 418 (IP ban, Retry-After 1) for 5 s, muted close")
async def rest_418_burst(r: Rig) -> None:
    await rest_burst(r, 418, mute=True)


@scenario("REST lag 1.5 s (< max_rest_lag_ms), muted: the entry fills 0.8 s after a stop was "
          "placed on the flat position; the stop must survive (Deliver 4; 3 trials)")
async def rest_lag_within_bound_entry(r: Rig) -> None:
    await entry_after_stop(r, lag_ms=1500, entry_after_s=0.8)


# REST lag beyond [core] max_rest_lag_ms with the stream muted too is outside what the reaper can
# guarantee (docs/REAPER.md, "The race"): no read the daemon makes can show an entry that filled
# less than the real lag before it. So the scenario beyond the bound keeps the stream live (the
# stream's report of the entry must keep the stop or restore it), and the muted one names the
# setting that covers its lag (the documented remedy: max_rest_lag_ms above the lag you expect).
@scenario("REST lag 3 s (> grace and > max_rest_lag_ms), stream live: the entry fills 2.5 s after "
          "the stop was placed; the stream's report must keep the stop or restore it (3 trials)")
async def rest_lag_beyond_grace_entry(r: Rig) -> None:
    await entry_after_stop(r, lag_ms=3000, entry_after_s=2.5, mute=False)


@scenario("REST lag 3 s, muted, [core] max_rest_lag_ms = 3500 (the bound covers the lag): the "
          "entry fills 2.5 s after the stop was placed; the stop must survive (3 trials)",
          start=False)
async def rest_lag_beyond_grace_entry_muted(r: Rig) -> None:
    r.write_config({"core": {"max_rest_lag_ms": 3500}})
    await r.start_daemon()
    await entry_after_stop(r, lag_ms=3000, entry_after_s=2.5, bound_ms=3500)


async def entry_after_stop(r: Rig, *, lag_ms: int, entry_after_s: float, trials: int = 3,
                           mute: bool = True, bound_ms: int = 2000) -> None:
    """A stop rests on the flat position; the stream goes mute (``mute``) while REST lags; the
    bot's entry fills ``entry_after_s`` later. The stop must survive, or be restored at once (b).
    Repeated: the outcome depends on where the daemon's polls fall."""
    r.extra_lag_s = lag_ms / 1000
    cancelled = 0
    for trial in range(trials):
        price = await r.sim.price(ETH)
        stop = await r.bot.stop(ETH, "SELL", "1", price * Decimal("0.95"),
                                client_id=f"sl-before-entry-{trial}")
        if mute:
            await r.sim.faults(stream="mute", rest_lag_ms=lag_ms)
        else:
            await r.sim.faults(rest_lag_ms=lag_ms)
        await asyncio.sleep(entry_after_s)  # scripted: when the bot's entry fills
        await r.sim.fill(ETH, "BUY", "1")
        # Watch long enough for the grace, the lag and a pre-cancel re-read to have played out.
        if await gone_within(r, stop, GRACE_S + (2 * lag_ms + max(0, bound_ms - 2000)) / 1000 + 3.0):
            cancelled += 1
        else:
            await r.bot.cancel(stop)
        await cancel_restored(r, stop)
        # back to flat, stream and REST normal, for the next trial
        await r.sim.clear_faults()
        await r.sim.fill(ETH, "SELL", "1")
        await r.published(ETH, "closed")
        await asyncio.sleep(HOLD_S)  # scripted: flat for longer than max_rest_lag_ms
    figure(r, f"stop gone in {cancelled}/{trials} trials (see (b) for which hit the open position; "
              f"entry {entry_after_s}s after it, lag {lag_ms} ms)")


@scenario("REST lag bursts (0 / 1.8 s every 0.3 s) while the position closes, muted: a published "
          "closure is never undone by an older answer")
async def rest_lag_bursts_flap(r: Rig) -> None:
    r.extra_lag_s = 1.8
    await r.sim.fill(ETH, "BUY", "1")
    await r.published(ETH, "open")
    await asyncio.sleep(HOLD_S)  # scripted: the position is held for a while (> max_rest_lag_ms)
    await r.sim.faults(stream="mute")
    await r.sim.fill(ETH, "SELL", "1")
    ends = time.monotonic() + 6
    lag = 0
    while time.monotonic() < ends:
        lag = 1800 if lag == 0 else 0
        await r.sim.faults(rest_lag_ms=lag)
        await asyncio.sleep(0.3)  # scripted: the burst pattern
    events = [e for e in await r.events() if e.get("position") == f"{ETH}:BOTH"]
    kinds = [e["kind"] for e in events if e["kind"] in ("position_opened", "position_closed")]
    if "position_closed" in kinds and "position_opened" in kinds[kinds.index("position_closed"):]:
        r.result.fail(f"goal: closure undone by an older REST answer: {kinds}")
    figure(r, f"events {'/'.join(k.split('_')[1] for k in kinds)}")


# ---------------------------------------------------------------------------- clock skew


async def skewed(r: Rig, skew_ms: int, *, at_start: bool, mute: bool) -> None:
    if at_start:
        await r.sim.faults(clock_skew_ms=skew_ms)
        await r.start_daemon()
    else:
        await r.sim.fill(ETH, "BUY", "1")
        await r.published(ETH, "open")
        await r.sim.faults(clock_skew_ms=skew_ms)
    await r.bot.sync_clock()
    # the skew stays for the whole scenario: it is not a fault that ends
    await muted_close_with_orphan(r, {"stream": "mute"} if mute else {}, qty="1216")
    await r.sim.fill(BTC, "BUY", "0.010")
    await r.published(BTC, "open")


@scenario("exchange clock 15 s ahead from the start, muted close", start=False)
async def clock_ahead_at_start(r: Rig) -> None:
    await skewed(r, 15_000, at_start=True, mute=True)


@scenario("exchange clock 15 s behind from the start, muted close", start=False)
async def clock_behind_at_start(r: Rig) -> None:
    await skewed(r, -15_000, at_start=True, mute=True)


@scenario("exchange clock jumps 15 s ahead while running, stream live")
async def clock_jump_ahead(r: Rig) -> None:
    await skewed(r, 15_000, at_start=False, mute=False)


@scenario("exchange clock jumps 15 s behind while running, muted close (issue: REST rows judged "
          "lagging for 15 s)")
async def clock_jump_behind(r: Rig) -> None:
    await skewed(r, -15_000, at_start=False, mute=True)


# ---------------------------------------------------------------------------- exchange closes


@scenario("liquidation while the stream is muted: the stops left behind are removed")
async def liquidation_while_muted(r: Rig) -> None:
    await muted_close_with_orphan(r, {"stream": "mute"}, close="liquidation")


@scenario("ADL while the stream is muted: the stops left behind are removed")
async def adl_while_muted(r: Rig) -> None:
    await muted_close_with_orphan(r, {"stream": "mute"}, close="adl")


@scenario("liquidation without its ACCOUNT_UPDATE (ccxt#27064), stream otherwise live")
async def liquidation_without_account_update(r: Rig) -> None:
    await muted_close_with_orphan(r, {}, close="liquidation_silent")


# ---------------------------------------------------------------------------- hedge mode


async def hedge(r: Rig, mute: bool) -> None:
    long_stop = await r.open_with_stop(BTC, "0.010", position_side="LONG")
    short_stop = await r.open_with_stop(BTC, "0.020", position_side="SHORT", side="SELL")
    await asyncio.sleep(HOLD_S)  # scripted: held longer than max_rest_lag_ms
    if mute:
        await r.sim.faults(stream="mute")
    await r.sim.fill(BTC, "SELL", "0.010", "LONG")
    closed = time.monotonic()
    await closure_known(r, BTC, 5.0, side="LONG")
    took = await orphan_removed(r, long_stop, ORPHAN_S, "LONG's stop removed", since=closed)
    if await r.stop_gone(short_stop):
        r.result.fail("goal: the SHORT side's stop was removed")
    if await veto_reason(r, BTC, "SHORT") != "allow":
        r.result.fail(f"goal: SHORT not allowed: {await veto_reason(r, BTC, 'SHORT')}")
    figure(r, f"LONG closed, its stop removed {late(took)} (bound {ORPHAN_S:.1f}s); SHORT kept")


@scenario("hedge mode: LONG closes, only its stop goes", keys=HEDGE, sim_args=("--dual-side",))
async def hedge_mode(r: Rig) -> None:
    await hedge(r, mute=False)


@scenario("hedge mode, stream muted: LONG closes, only its stop goes", keys=HEDGE,
          sim_args=("--dual-side",))
async def hedge_mode_muted(r: Rig) -> None:
    await hedge(r, mute=True)


# ---------------------------------------------------------------------------- Redis


@scenario("redis-server killed (-9) while the position closes, restarted 3 s later")
async def redis_killed_restarted(r: Rig) -> None:
    await r.open_with_stop(BAS, "1216")
    await r.redis_proc.kill()
    await r.sim.fill(BAS, "SELL", "1216")
    await asyncio.sleep(3.0)  # scripted: the outage
    await r.redis_proc.start()
    took = await closure_known(r, BAS, 10.0)
    figure(r, f"closure published {'-' if took is None else f'{took:.2f}s'} after Redis came back")


@scenario("Redis FLUSHALL: everything republished within a few heartbeats")
async def redis_flushall(r: Rig) -> None:
    await r.open_with_stop(BAS, "1216")
    await r.sim.fill(ETH, "SELL", "1")
    await r.published(ETH, "open")
    await r.r.flushall()
    flushed = time.monotonic()

    async def back() -> bool:
        return (await veto_reason(r, BAS)) == "allow" and (await r.pos(ETH)).get("state") == "open"
    took = await r.within("positions republished after FLUSHALL", back, 5.0)
    figure(r, f"republished {'-' if took is None else f'{time.monotonic() - flushed:.2f}s'}")


@scenario("redis-server restarted gracefully while positions are open")
async def redis_restart(r: Rig) -> None:
    await r.open_with_stop(BAS, "1216")
    await r.redis_proc.stop()
    await r.redis_proc.start()
    took = await r.within("open position allowed again", lambda: r.allowed(BAS), 10.0)
    figure(r, f"back {'-' if took is None else f'{took:.2f}s'}")


@scenario("Redis unreachable when the daemon starts: exit 1 (documented)", start=False)
async def redis_down_at_start(r: Rig) -> None:
    await r.redis_proc.stop()
    await r.start_daemon(wait_ready=False)
    r.expect_exit = 1
    code = await r.daemon.wait_exit(60)
    await r.redis_proc.start()
    figure(r, f"exit {code}")


# ---------------------------------------------------------------------------- the daemon


@scenario("daemon killed -9 while reaping an orphan, restarted: the orphan still goes")
async def daemon_kill9_mid_reap(r: Rig) -> None:
    stop = await r.open_with_stop(BAS, "1216")
    await r.sim.fill(BAS, "SELL", "1216")

    async def reaping() -> bool:
        marker = await r.r.exists(f"{K}:reaping:{BAS}:BOTH")
        return bool(marker) or bool(await r.events("trailing_stop_orphaned"))
    await r.until("the reaper at work", reaping, timeout_s=15, interval_s=0.005)
    await r.daemon.kill9()
    cancelled_first = await r.stop_gone(stop)
    await asyncio.sleep(1.0)  # scripted: systemd's restart delay
    await r.start_daemon()
    took = await orphan_removed(r, stop, ORPHAN_S + 3.0)
    figure(r, f"killed {'after' if cancelled_first else 'before'} the cancel; orphan gone {late(took)} "
              f"after the restart (bound {ORPHAN_S + 3.0:.1f}s)")


@scenario("daemon killed -9, the position closes while it is down, restarted: position_closed "
          "with while_down (Deliver 6)")
async def daemon_kill9_closed_while_down(r: Rig) -> None:
    stop = await r.open_with_stop(BAS, "1216")
    await r.daemon.kill9()
    await r.sim.fill(BAS, "SELL", "1216")
    await asyncio.sleep(2.0)  # scripted: down for a while
    await r.start_daemon()

    async def told() -> bool:
        return any(e.get("position") == f"{BAS}:BOTH" and e.get("while_down") in ("true", "1", "True")
                   for e in await r.events("position_closed"))
    took = await r.within("position_closed while_down after the restart", told, 10.0)
    await orphan_removed(r, stop, ORPHAN_S + 5.0)
    figure(r, f"while_down event {'-' if took is None else f'{took:.2f}s'}")


@scenario("SIGTERM: exit 0, verdicts say watchdog_down at once; restarted afterwards")
async def daemon_sigterm(r: Rig) -> None:
    await r.open_with_stop(BAS, "1216")
    code = await r.daemon.term()
    if code != 0:
        r.result.fail(f"(d) SIGTERM: exit {code} (documented: 0)")
    reason = await veto_reason(r, BAS)
    if reason != "watchdog_down":
        r.result.fail(f"goal: after the exit the verdict is {reason}, not watchdog_down")
    await asyncio.sleep(1.0)  # scripted: down for a while
    await r.start_daemon()
    figure(r, f"exit {code}, then {reason}")


@scenario("SIGTERM during a flood of user-data frames: exit 0 within 20 s (the flood's synthetic "
          "BTC/ETH frames are not probed: the model books them only when the flood ends)",
          keys=[(BAS, "BOTH")])
async def daemon_sigterm_under_flood(r: Rig) -> None:
    await r.sim.fill(BAS, "BUY", "1216")
    await r.published(BAS, "open")
    flood = asyncio.create_task(r.sim.control("POST", "flood", {"count": 300_000,
                                                                "symbols": [BTC, ETH]}))
    await asyncio.sleep(1.0)  # scripted: the flood is under way
    started = time.monotonic()
    code = await r.daemon.term(timeout_s=20)
    took = time.monotonic() - started
    with contextlib.suppress(Exception):
        await flood
    if code != 0:
        r.result.fail(f"(d) SIGTERM under a flood: exit {code} (documented: 0)")
    await r.start_daemon()
    figure(r, f"exit {code} after {took:.2f}s")


@scenario("SIGTERM during startup while every REST call fails: exit 0 with a log line",
          start=False)
async def sigterm_during_startup(r: Rig) -> None:
    await r.sim.faults(rest_errors={"status": 503, "count": 100_000})
    await r.start_daemon(wait_ready=False)
    await asyncio.sleep(3.0)  # scripted: startup is retrying
    r.expect_exit = 0
    code = await r.daemon.term()
    await r.clear_faults()
    if not r.daemon.log_text().strip():
        r.result.fail("goal: no log line at all")
    figure(r, f"exit {code}")


@scenario("Binance rejects the API key: exit 77 (documented)", start=False)
async def bad_api_key(r: Rig) -> None:
    r.expect_exit = 77
    r.write_config()
    await r.daemon.start(env={"BINANCE_API_KEY": "not-the-key"})
    code = await r.daemon.wait_exit(60)
    figure(r, f"exit {code}")


@scenario("a config with an unknown key: exit 78 (documented)", start=False)
async def bad_config(r: Rig) -> None:
    r.expect_exit = 78
    r.daemon.config_path.write_text(config_text(r.sim, r.redis_proc.url,
                                                {"reaper": {"grace": 1}}))
    await r.daemon.start()
    code = await r.daemon.wait_exit(60)
    figure(r, f"exit {code}")


# ---------------------------------------------------------------------------- bots


async def move_stop(r: Rig, holder: str, current: list[int], symbol: str, qty: str,
                    wins: list[tuple[int, int]], factor: str) -> str:
    """One trailing move with the shipped client: begin → cancel → confirm → create → end."""
    try:
        async with r.wd.guard_stop_update(symbol, holder=holder, ttl_ms=5000) as guard:
            began = now_ms()
            await r.bot.cancel(current[0])
            await guard.confirm()
            price = await r.sim.price(symbol)
            current[0] = await r.bot.stop(symbol, "SELL", qty, price * Decimal(factor))
            # [began, ending] lies inside the lease's life (begin answered … end not yet called)
            ending = now_ms()
        wins.append((began, ending))
        return "moved"
    except Vetoed as exc:
        return exc.verdict.reason


@scenario("two bots race to move the same stop (shipped client begin/confirm/end): never both")
async def two_bots_racing(r: Rig) -> None:
    current = [await r.open_with_stop(BAS, "1216")]
    wins: list[tuple[int, int]] = []
    outcomes: list[str] = []

    async def bot(name: str, factor: str) -> None:
        for _ in range(8):
            outcomes.append(await move_stop(r, name, current, BAS, "1216", wins, factor))
            await asyncio.sleep(0.05)

    await asyncio.gather(bot("bot-a", "0.95"), bot("bot-b", "0.94"))
    wins.sort()
    overlaps = sum(1 for a, b in itertools.pairwise(wins) if b[0] < a[1])
    if overlaps:
        r.result.fail(f"goal: {overlaps} overlapping leases")
    open_stops = [a for a in (await r.sim.account())["open_algo_orders"] if a["symbol"] == BAS]
    if len(open_stops) != 1:
        r.result.fail(f"goal: {len(open_stops)} stops on the open position, expected 1")
    figure(r, f"{outcomes.count('moved')} moves, {outcomes.count('lease_held')} lease_held")


@scenario("a bot keeps moving its stop while the position closes, muted: vetoed, no orphan left")
async def bot_moves_while_closing(r: Rig) -> None:
    current = [await r.open_with_stop(BAS, "1216")]
    wins: list[tuple[int, int]] = []
    await asyncio.sleep(HOLD_S)  # scripted: held longer than max_rest_lag_ms before the close
    await r.sim.faults(stream="mute")
    await r.sim.fill(BAS, "SELL", "1216")
    closed = time.monotonic()
    outcomes = []
    for _ in range(30):
        outcomes.append(await move_stop(r, "bot", current, BAS, "1216", wins, "0.95"))
        if outcomes[-1] == "position_closed":
            break
        await asyncio.sleep(0.2)
    if "position_closed" not in outcomes:
        r.result.fail(f"goal: never vetoed position_closed: {outcomes[-3:]}")
    took = await orphan_removed(r, current[0], ORPHAN_S + 2.0, since=closed)
    figure(r, f"{outcomes.count('moved')} moves before the veto; orphan {late(took)} "
              f"(bound {ORPHAN_S + 2.0:.1f}s)")


@scenario("the reaper's race: the entry fills as soon as the reaper selects the stop, REST lag "
          "0.3 s (inside the bound), stream live (5 trials)")
async def reaper_race(r: Rig) -> None:
    """The bot's entry fills the moment the reaper announces its selection (the ``reaping`` marker
    or ``trailing_stop_orphaned``); the stop must then survive, or be restored within 1 s (b)."""
    r.extra_lag_s = 0.3
    await r.sim.faults(rest_lag_ms=300)
    kept = on_open = 0
    for trial in range(TRIALS):
        price = await r.sim.price(ETH)
        stop = await r.bot.stop(ETH, "SELL", "1", price * Decimal("0.95"), client_id=f"race-{trial}")

        async def selected(stop: int = stop) -> bool:
            marker = await r.r.exists(f"{K}:reaping:{ETH}:BOTH")
            orphaned = [e for e in await r.events("trailing_stop_orphaned") if e.get("order_id") == str(stop)]
            return bool(marker or orphaned) or await r.stop_gone(stop)
        await r.until(f"trial {trial}: the reaper selects stop {stop}", selected, timeout_s=40,
                      interval_s=0.005)
        await r.sim.fill(ETH, "BUY", "1")  # the bot's entry fills right after the flat read
        if await gone_within(r, stop, GRACE_S + 3):
            cancels = [e for e in await r.sim.history()
                       if e["kind"] == "algo" and e["id"] == stop and e["status"] == "CANCELED"]
            on_open += 1 if cancels and cancels[-1]["position_amount"] != "0" else 0
        else:
            kept += 1
        # back to flat for the next trial; the bot removes what is left itself
        if not await r.stop_gone(stop):
            await r.bot.cancel(stop)
        await cancel_restored(r, stop)
        await r.sim.fill(ETH, "SELL", "1")
        await asyncio.sleep(HOLD_S)  # scripted: flat for longer than max_rest_lag_ms
    figure(r, f"of {TRIALS} trials: kept {kept}, cancelled on the open position {on_open}, "
              f"cancelled before the fill {TRIALS - kept - on_open}")


@scenario("the bot exhausts the IP weight (429 with Retry-After), muted close: closure known within "
          "Retry-After + 5 s")
async def bot_exhausts_ip_weight(r: Rig) -> None:
    stop = await r.open_with_stop(BAS, "1216")
    await asyncio.sleep(HOLD_S)  # scripted: held longer than max_rest_lag_ms
    await r.sim.faults(stream="mute")
    retry_after = 0
    for _ in range(200):
        status, _, headers = await r.bot.signed("GET", "/fapi/v1/openOrders", {})
        if status == 429:
            retry_after = int(headers.get("Retry-After", "60"))
            break
    else:
        raise ChaosFailure("the bot never saw a 429")
    await r.sim.fill(BAS, "SELL", "1216")
    closed = time.monotonic()
    took = await closure_known(r, BAS, retry_after + 5.0)
    gone = await orphan_removed(r, stop, retry_after + 5.0 + ORPHAN_S, since=closed)
    figure(r, f"Retry-After {retry_after}s, closure {late(took)}, orphan {late(gone)}")


async def raw_begin(r: Rig, ttl: str, holder: str = "garbage-bot", max_age: str = "") -> Any:
    sha = await r.r.hget(f"{K}:health", "sha_begin")
    m = f"{BAS}:BOTH"
    try:
        return await r.r.evalsha(sha, 4, f"{K}:lease:{m}", f"{K}:lease_seq", f"{K}:leases", f"{K}:events",
                                 m, holder, ttl, max_age, f"{K}:events", f"{K}:health", f"{K}:pos:{m}",
                                 f"{K}:reaping:{m}")
    except redis.exceptions.ResponseError as exc:
        return f"error: {exc}"


async def status_ok(r: Rig) -> str:
    """``position-watchdog status --json`` must answer (exit 0/1/2 with JSON), never crash."""
    code, doc = await status_json(r)
    if "crashed" in doc:
        r.result.fail(f"goal: status crashed (exit {code}): {doc['crashed'][-200:]}")
        return "crashed"
    return f"status {doc.get('verdict')} exit {code}"


@scenario("a bot calls begin with garbage (ttl inf/nan/-5/abc/1e309): no lease poisons the next "
          "bot, status answers")
async def bot_garbage_lua(r: Rig) -> None:
    await r.open_with_stop(BAS, "1216")
    replies = [await raw_begin(r, ttl) for ttl in ("inf", "nan", "-5", "abc", "1e309")]
    for reply in replies:
        if isinstance(reply, list) and reply and reply[0] == 1:  # allowed: release what it took
            await r.wd.end(BAS, "BOTH", int(reply[2]), "garbage")

    async def clean() -> bool:
        verdict = await r.wd.begin(BAS, "BOTH", holder="good-bot", ttl_ms=2000)
        if verdict.allowed and verdict.lease is not None:
            await r.wd.end(BAS, "BOTH", verdict.lease, "ok")
        return verdict.allowed
    took = await r.within("a well-behaved bot's begin allowed", clean, 3.0)
    state = await status_ok(r)
    figure(r, f"good bot {'vetoed' if took is None else 'allowed'}; {state}")


@scenario("a bot writes garbage into the watchdog's keys: daemon survives, status answers, Redis "
          "converges")
async def bot_garbage_keys(r: Rig) -> None:
    await r.open_with_stop(BAS, "1216")
    await r.r.hset(f"{K}:pos:{BAS}:BOTH", mapping={"amt": "garbage", "version": "x", "verified_ms": "inf"})
    await r.r.zadd(f"{K}:leases", {"garbage": 1e18, f"{BAS}:SIDEWAYS": 5})
    await r.r.hset(f"{K}:lease:{BAS}:BOTH", mapping={"token": "zz", "expires_ms": "soon"})
    await r.r.xadd(f"{K}:events", {"kind": "\x00\xff", "junk": "1"})
    await r.r.set(f"{K}:epoch", "not-an-epoch")
    await r.r.hset(f"{K}:windows", mapping={f"{BAS}:BOTH": "{not json"})
    await r.sim.fill(BAS, "BUY", "1216")  # a change the daemon must publish over the garbage
    state = await status_ok(r)
    figure(r, state)


# ---------------------------------------------------------------------------- the guard (issue 17)

# The scenarios' own setting: the opt-in last-resort stop (docs/GUARD.md), 5 % from the mark;
# every other [guard] key at its default (unprotected_alert_ms 3 s, emergency_after_ms 10 s,
# max_orders_per_min 6).
GUARD_ON = {"guard": {"emergency_stop_pct": 5.0}}
ALERT_S, EMERGENCY_S, GUARD_RETRY_S, GUARD_BUDGET = 3.0, 10.0, 5.0, 6
# Stream muted: only an orders read shows a cancelled stop, and at the default weight budget
# a symbol's orders are read at least once a minute (docs/GUARD.md, Figures: p95 44.6 s, max
# 53.8 s): the alert's bound is that minute, the grace and a blind reconnect's reads.
MUTED_ALERT_S = 60.0 + ALERT_S + 7.0


async def guard_started(r: Rig, extra: dict[str, dict[str, Any]] | None = None) -> None:
    r.write_config({**GUARD_ON, **(extra or {})})
    await r.start_daemon()


async def protection(r: Rig, wanted: str, symbol: str = BAS, timeout_s: float = 30.0) -> None:
    async def shown() -> bool:
        return (await r.pos(symbol)).get("protection") == wanted
    await r.until(f"{symbol}:BOTH published protection {wanted}", shown, timeout_s=timeout_s)


async def guard_events(r: Rig, kind: str, symbol: str = BAS) -> list[dict[str, str]]:
    return [e for e in await r.events(kind) if e.get("position") == f"{symbol}:BOTH"]


async def our_stops(r: Rig, symbol: str = BAS) -> list[int]:
    return [int(a["algoId"]) for a in (await r.sim.account())["open_algo_orders"]
            if a["symbol"] == symbol and str(a.get("clientAlgoId", "")).startswith(GUARD_PREFIX)]


async def guard_deciding(r: Rig, symbol: str = BAS) -> None:
    """The guard has decided a last-resort stop: its client id is published with the position
    (``guard_order``) from the moment of the decision, before the shell's fresh positionRisk
    read and the placement."""
    async def decided() -> bool:
        return bool((await r.pos(symbol)).get("guard_order"))
    await r.until("the guard decides a last-resort stop", decided,
                  timeout_s=ALERT_S + EMERGENCY_S + 20, interval_s=0.005)


def budget_kept(r: Rig, actions: list[dict[str, str]]) -> None:
    """At most ``max_orders_per_min`` placements + removals (attempts included) in any 60 s."""
    times = sorted(int(e["id"].split("-")[0]) for e in actions)
    worst = max((sum(1 for t in times if s <= t < s + 60_000) for s in times), default=0)
    r.result.figures["guard_actions_60s"] = worst
    if worst > GUARD_BUDGET:
        r.result.fail(f"goal: {worst} guard placements/removals in 60 s (max_orders_per_min "
                      f"{GUARD_BUDGET})")


@scenario("the guard, stream muted: the bot cancels its only stop; position_unprotected still "
          f"comes (bound {MUTED_ALERT_S:.0f} s), the last-resort stop only after it and after the "
          "cancel, removed once the bot's stop is back ([guard] emergency_stop_pct = 5)",
          start=False)
async def guard_cancel_muted(r: Rig) -> None:
    await guard_started(r)
    stop = await r.open_with_stop(BAS, "1216")
    await protection(r, "covered")
    await r.sim.faults(stream="mute")
    await r.bot.cancel(stop)

    async def alerted() -> bool:
        return bool(await guard_events(r, "position_unprotected"))
    took = await r.within("position_unprotected after the cancel, stream muted", alerted, MUTED_ALERT_S)

    async def placed() -> bool:
        return bool(await guard_events(r, "guard_stop_placed"))
    put = await r.within("guard_stop_placed after the alert", placed, EMERGENCY_S + 20)
    history = await r.sim.history()
    cancel_at = min((e["wall_ms"] for e in history if e["kind"] == "algo" and e["id"] == stop
                     and e["status"] == "CANCELED"), default=None)
    ours_at = [e["wall_ms"] for e in history if e["kind"] == "algo" and e["status"] == "NEW"
               and str(e.get("client_id", "")).startswith(GUARD_PREFIX)]
    if cancel_at is not None and any(t < cancel_at for t in ours_at):
        r.result.fail("goal: a last-resort stop placed while the bot's stop was still live")
    alerts, stops = await guard_events(r, "position_unprotected"), await guard_events(r, "guard_stop_placed")
    if alerts and stops and int(stops[0]["id"].split("-")[0]) < int(alerts[0]["id"].split("-")[0]):
        r.result.fail("goal: the last-resort stop went before the alert")
    await r.clear_faults()
    price = await r.sim.price(BAS)
    await r.bot.stop(BAS, "SELL", "1216", price * Decimal("0.95"))

    async def removed() -> bool:
        return not await our_stops(r)
    gone = await r.within("the guard's stop removed once the bot's is back", removed, 30.0)
    budget_kept(r, [*stops, *await guard_events(r, "guard_stop_removed"),
                    *await guard_events(r, "guard_stop_failed")])
    figure(r, f"alert {late(took)} after the cancel (muted), guard stop "
              f"{late(None if put is None or took is None else put + took)}, removed {late(gone)}")


@scenario("the guard on: the position closes the moment the guard decides its last-resort stop "
          "(before or after the placement): nothing left on the flat position (bound "
          "grace + lag + 1.5 s)", start=False)
async def guard_close_while_placing(r: Rig) -> None:
    await guard_started(r)
    stop = await r.open_with_stop(BAS, "1216")
    await protection(r, "covered")
    await asyncio.sleep(HOLD_S)  # scripted: held longer than max_rest_lag_ms before the close
    await r.bot.cancel(stop)
    await guard_deciding(r)
    await r.sim.fill(BAS, "SELL", "1216")
    closed = time.monotonic()
    await closure_known(r, BAS, 5.0)

    async def nothing_left() -> bool:
        return not await our_stops(r)
    await r.within("no stop of the guard left on the flat position", nothing_left, ORPHAN_S)
    left = time.monotonic() - closed
    ours = [e for e in await r.sim.history() if e["kind"] == "algo" and e["status"] == "NEW"
            and str(e.get("client_id", "")).startswith(GUARD_PREFIX)]
    where = ("not placed" if not ours else
             "placed on the open position" if ours[0]["position_amount"] != "0" else
             "placed on the flat position")
    figure(r, f"guard stop {where}; nothing left {left:.2f}s after the close (bound {ORPHAN_S:.1f}s)")


@scenario("the guard on: the bot re-places its stop while the guard's is in flight: the guard's "
          "is removed, the bot's kept (never both gone), one stop of ours at most", start=False)
async def guard_bot_replaces_in_flight(r: Rig) -> None:
    await guard_started(r)
    stop = await r.open_with_stop(BAS, "1216")
    await protection(r, "covered")
    await r.bot.cancel(stop)
    await guard_deciding(r)
    price = await r.sim.price(BAS)
    mine = await r.bot.stop(BAS, "SELL", "1216", price * Decimal("0.95"))

    async def settled() -> bool:
        return not await our_stops(r) and (await r.pos(BAS)).get("protection") == "covered" \
            and not (await r.pos(BAS)).get("guard_order")
    took = await r.within("the guard's stop gone, the bot's covering", settled, 15.0)
    if await r.stop_gone(mine):
        r.result.fail("goal: the bot's re-placed stop is gone")
    placed = len(await guard_events(r, "guard_stop_placed"))
    removed = len(await guard_events(r, "guard_stop_removed"))
    figure(r, f"guard stop placed {placed}, removed {removed}; settled {late(took)}; bot's kept")


@scenario("the guard on, its placement refused (-4045: the account's 200 conditional orders "
          "are in use by the bot's take-profits): guard_stop_failed surfaces, retried no faster "
          "than every 5 s within max_orders_per_min, the alert and health problem stand; placed "
          "once a slot frees", start=False)
async def guard_stop_refused_cap(r: Rig) -> None:
    await guard_started(r)
    stop = await r.open_with_stop(BAS, "1216")
    await protection(r, "covered")
    price = await r.sim.price(BAS)
    tps: list[int] = []
    for _ in range(10):  # 1 stop + 199 take-profits, then the stop goes and a 200th comes
        tps += await asyncio.gather(*(r.bot.stop(BAS, "SELL", "1", price * Decimal("1.2"),
                                                 order_type="TAKE_PROFIT_MARKET")
                                      for _ in range(20 if len(tps) < 180 else 19)))
    await r.bot.cancel(stop)
    tps.append(await r.bot.stop(BAS, "SELL", "1", price * Decimal("1.2"), order_type="TAKE_PROFIT_MARKET"))

    async def refused() -> bool:
        return bool(await guard_events(r, "guard_stop_failed"))
    first = await r.within("guard_stop_failed (-4045)", refused, ALERT_S + EMERGENCY_S + 15)
    if first is None:
        return
    await asyncio.sleep(3 * GUARD_RETRY_S)  # scripted: the time the retries are watched
    failed = await guard_events(r, "guard_stop_failed")
    times = [int(e["id"].split("-")[0]) for e in failed]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if gaps and min(gaps) < GUARD_RETRY_S * 1000 - 500:
        r.result.fail(f"goal: retried after {min(gaps)} ms (retry 5 s): a retry storm")
    if not any("-4045" in e.get("error", "") for e in failed):
        r.result.fail(f"goal: the error does not name -4045: {failed[0].get('error')!r}")
    if not await guard_events(r, "position_unprotected"):
        r.result.fail("goal: no position_unprotected while the guard cannot place")
    problems = await r.r.hget(f"{K}:health", "problems") or ""
    if "unprotected" not in problems:
        r.result.fail(f"goal: health problems {problems!r} do not say unprotected")
    await r.bot.cancel(tps.pop())  # a slot frees

    async def placed() -> bool:
        return bool(await our_stops(r))
    put = await r.within("the guard's stop placed once a slot is free", placed, GUARD_RETRY_S + 10)
    await r.bot.cancel(tps.pop())
    await r.bot.stop(BAS, "SELL", "1216", price * Decimal("0.95"))  # the bot's own stop is back

    async def removed() -> bool:
        return not await our_stops(r)
    await r.within("the guard's stop removed once the bot's is back", removed, 30.0)
    budget_kept(r, [*failed, *await guard_events(r, "guard_stop_placed"),
                    *await guard_events(r, "guard_stop_removed")])
    figure(r, f"{len(failed)} refusals, gaps {min(gaps, default=0) / 1000:.1f}s+; placed "
              f"{late(put)} after a slot freed; {r.result.figures.get('guard_actions_60s')} "
              f"actions/60 s")


@scenario("the guard on, REST 1.5 s behind (< max_rest_lag_ms), stream live: the bot moves its "
          "stop slowly under a veto lease (cancel, 4 s, create): no alert, no last-resort stop",
          start=False)
async def guard_rest_lag_under_lease(r: Rig) -> None:
    await guard_started(r)
    current = [await r.open_with_stop(BAS, "1216")]
    await protection(r, "covered")
    r.extra_lag_s = 1.5
    await r.sim.faults(rest_lag_ms=1500)
    async with r.wd.guard_stop_update(BAS, holder="slow-bot", ttl_ms=8000) as lease:
        await r.bot.cancel(current[0])
        await lease.confirm()
        await asyncio.sleep(4.0)  # scripted: a slow move, inside the lease
        price = await r.sim.price(BAS)
        current[0] = await r.bot.stop(BAS, "SELL", "1216", price * Decimal("0.94"))
    await protection(r, "covered")
    await asyncio.sleep(ALERT_S + EMERGENCY_S)  # scripted: past the grace and emergency_after_ms
    alerts = await guard_events(r, "position_unprotected")
    placed = await guard_events(r, "guard_stop_placed")
    if alerts or placed:
        r.result.fail(f"goal: {len(alerts)} alert(s), {len(placed)} last-resort stop(s) during a "
                      f"leased move")
    figure(r, f"alerts {len(alerts)}, guard stops {len(placed)}")


@scenario("the guard on, two instances: the leader is killed -9 as its guard decides a "
          "last-resort stop; the standby leads: one stop of ours at most, the alert told once, "
          "the stop removed when the bot's is back", start=False)
async def guard_leader_killed_mid_placement(r: Rig) -> None:
    await guard_started(r)
    standby = Daemon(r.daemon.config_path, r.workdir / "standby.log")
    await standby.start({"BINANCE_API_KEY": "sim-key", "BINANCE_API_SECRET": "sim-secret"})
    try:
        async def two() -> bool:
            return len(await r.r.zrange(f"{K}:instances", 0, -1)) >= 2
        await r.until("two instances registered", two, timeout_s=60)

        async def standby_live() -> bool:
            return "stream_recovered" in standby.log_text()
        await r.until("the standby's stream live", standby_live, timeout_s=30)
        stop = await r.open_with_stop(BAS, "1216")
        await protection(r, "covered")
        await r.bot.cancel(stop)
        await guard_deciding(r)
        await r.daemon.kill9()
        r.daemon = standby  # the standby is the watchdog now (invariant (a) judges it from here)

        async def leads() -> bool:
            return (await r.r.hget(f"{K}:health", "pid")) == str(standby.proc.pid if standby.proc else "")
        await r.until("the standby leads", leads, timeout_s=30)

        async def protected_once() -> bool:
            return len(await our_stops(r)) == 1
        took = await r.within("one stop of ours on the position under the new leader",
                              protected_once, EMERGENCY_S + 15)
        price = await r.sim.price(BAS)
        await r.bot.stop(BAS, "SELL", "1216", price * Decimal("0.95"))

        async def removed() -> bool:
            return not await our_stops(r)
        await r.within("the guard's stop removed once the bot's is back", removed, 30.0)
        alerts = await guard_events(r, "position_unprotected")
        if len(alerts) != 1:
            r.result.fail(f"goal: position_unprotected told {len(alerts)} times (once expected)")
        figure(r, f"one stop of ours {late(took)} after the kill; alerts {len(alerts)}")
    finally:
        if standby.running and r.daemon is not standby:
            await standby.kill9()


def by_name() -> dict[str, Spec]:
    return {spec.name: spec for spec in SCENARIOS}

