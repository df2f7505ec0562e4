"""``run(config, credentials)``: builds the adapters and owns THE TaskGroup.

This is the only module that imports every adapter and the only place tasks are created::

    stream ─┐
    market ─┤ (StopCrossed: a public price crossed an open stop's trigger)
    poller ─┼─► Inbox ─► core (PositionBook + OrderBook) ─► EffectsRunner ─► Redis (store)
    ticker ─┘                 │                                   ├─► poller (RequestSnapshot)
                              └─► sd_notify READY/WATCHDOG/STATUS ├─► reaper (CancelOrder)
                                                                  └─► metrics (observer, [metrics])
    heartbeat: health hash every [redis] heartbeat_interval_s; writes what Redis missed

Stopping: SIGTERM/SIGINT set an event; the ``stop`` task then cancels every other task until
each has ended (see ``_stop_when`` for why once is not enough), then the health hash is removed
so bots see ``watchdog_down`` at once (``_mark_stopped``). Nothing is torn down on the
exchange: the listen key is never DELETEd (it is the account's one key, shared with the bot),
orders are left alone. Fatal errors propagate out of
the TaskGroup as an ExceptionGroup; ``cli.py`` turns them into an exit code and one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Mapping
from decimal import Decimal
from typing import Any, Protocol

import httpx
from loguru import logger

from watchdog import __version__
from watchdog.binance.market_stream import MarketStream
from watchdog.binance.poller import Poller, PollSchedule
from watchdog.binance.protocol.budget import Priority
from watchdog.binance.protocol.weights import IP_WEIGHT_LIMIT_PER_MIN
from watchdog.binance.rest import BinanceRest
from watchdog.binance.stream import UserDataStream
from watchdog.cancel import raise_if_cancelling
from watchdog.clock import Clock, SystemClock
from watchdog.config import Config, Credentials, calm_poll_interval_s
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.core.guard import Guard, GuardPolicy, Leases
from watchdog.core.model import PositionKey
from watchdog.core.orders import OrderBook
from watchdog.core.proof import StreamProof
from watchdog.core.reaper import ReaperDecision
from watchdog.errors import AuthenticationFailed, ExchangeError, StoreError
from watchdog.runtime.canary_task import CanaryTask, canary_policy
from watchdog.runtime.effects_runner import EffectsRunner
from watchdog.runtime.guard_task import GuardTask
from watchdog.runtime.lead_task import run_lead
from watchdog.runtime.loops import CoreLoop, Inbox, run_heartbeat, run_ticker
from watchdog.runtime.metrics import Metrics
from watchdog.runtime.metrics_serve import serve_metrics, tail_events
from watchdog.runtime.reaper_task import ReaperTask
from watchdog.runtime.systemd import Notifier
from watchdog.runtime.trigger_task import TriggerTask
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.publisher import RedisPublisher

__all__ = ["INBOX_SIZE", "LeaseSource", "guard_policy", "leased_symbols_of", "run"]


class LeaseSource(Protocol):
    """What the poller's fast pace needs of ``RedisPublisher``."""

    async def leased_symbols(self) -> frozenset[PositionKey]: ...

INBOX_SIZE = 10_000  # ~seconds of a busy account's events: room to ride out a slow Redis write
_STATUS_INTERVAL_S = 30.0
_RECANCEL_INTERVAL_S = 0.2
_GC_THRESHOLDS = (10_000, 10, 10)  # CPython's default first threshold is 700


async def run(config: Config, credentials: Credentials, *, clock: Clock | None = None,
              notifier: Notifier | None = None, stop: asyncio.Event | None = None) -> int:
    """Run the watchdog until ``stop`` is set (SIGTERM/SIGINT set it); returns 0 then.

    Raises:
        ExceptionGroup: what ended a task, classified by ``cli.py`` (ConfigError → 78,
            AuthenticationFailed → 77, InvariantViolation → 70, anything else non-zero).
        StoreUnavailable: Redis unreachable at startup (systemd retries us).
    """
    stop = stop or asyncio.Event()
    # First thing: a SIGTERM while startup still waits for Redis or Binance (time-sync retries
    # while Binance is unreachable) must end the process as documented, not by the default
    # handler (-15, nothing logged).
    with _stop_on_signals(stop):
        return await _run(config, credentials, clock or SystemClock(), notifier or Notifier(),
                          stop)


async def _run(config: Config, credentials: Credentials, clock: Clock, notifier: Notifier,
               stop: asyncio.Event) -> int:
    b, r = config.binance, config.redis
    weight_budget_1m = IP_WEIGHT_LIMIT_PER_MIN * b.weight_budget_pct // 100
    # Versions must keep growing across restarts, or Redis' compare-and-set would refuse every
    # write of this run until it caught up with the last one (a closure would never show).
    book = PositionBook(BookPolicy(max_age_ms=config.core.max_age_ms,
                                   max_rest_lag_ms=config.core.max_rest_lag_ms),
                        version_base=clock.wall_ms() * 1000)
    vitals = Vitals(
        Identity(os.getpid(), socket.gethostname(), __version__, clock.wall_ms()), book,
        weight_budget_1m=weight_budget_1m, progress_limit_s=_progress_limit_s(config),
        reaper=_reaper_mode(config), proof=StreamProof(max_rest_lag_ms=config.core.max_rest_lag_ms))
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(
            base_url=b.rest_url, timeout=httpx.Timeout(b.request_timeout_s)))
        rest = BinanceRest(http, credentials, recv_window_ms=b.recv_window_ms, clock=clock,
                           weight_budget_per_min=weight_budget_1m,
                           timeout=httpx.Timeout(b.request_timeout_s))
        store = RedisPublisher.from_url(
            r.url, account=r.account, health_ttl_ms=r.health_ttl_ms, closed_ttl_s=r.closed_ttl_s,
            events_maxlen=r.events_maxlen, veto_max_age_ms=config.veto.max_age_ms,
            socket_timeout_s=r.socket_timeout_s, lead_ttl_ms=r.lead_ttl_ms, **r.client_options())
        stack.push_async_callback(store.close)

        async def start() -> None:
            await store.start()
            # The lead at once when free (one instance: always, unless its own crashed run's
            # lease still runs, for at most lead_ttl_ms); else a hot standby (docs/HA.md).
            if not await store.acquire():
                logger.info("standby: {} leads account {}", store.leader, r.account)
            # Closed while we were down → published closed, and told (position_closed, while_down).
            published = await store.published_keys()
            book.expect(published, await store.last_shown(published))
            try:
                await rest.sync_time()
                # One signed read proves key, secret, permission and IP whitelist now: refused
                # credentials end the daemon here (exit 77) instead of a restart loop.
                await rest.fetch_positions(priority=Priority.REQUESTED)
            except AuthenticationFailed:
                raise
            except ExchangeError as exc:
                # Start anyway: the heartbeat then shows an alive-but-blind watchdog (degraded,
                # REST failing) instead of a missing one, and the stream/poller keep retrying;
                # signed calls use offset 0 until a -1021 makes the client re-sync. Refused
                # credentials met before the first snapshot still end it (``_refused_before_ready``).
                logger.warning("Binance unreachable at startup: {}", exc)

        if not await _unless_stopped(stop, start()):
            logger.info("stopping on signal during startup: nothing was published, nothing left "
                        "on the exchange")
            notifier.stopping(status="stopping on signal during startup")
            return 0

        inbox = Inbox(INBOX_SIZE)
        schedule = PollSchedule.from_config(b, idle_poll_interval_s=calm_poll_interval_s(config))
        orders = OrderBook(max_rest_lag_ms=config.core.max_rest_lag_ms)
        # Trigger watching (issue 13): the public prices the open stops trigger on.
        market = MarketStream(ws_url=b.ws_url, clock=clock, max_silence_s=b.max_silence_s,
                              reconnect_min_delay_s=b.reconnect_min_delay_s,
                              reconnect_max_delay_s=b.reconnect_max_delay_s,
                              rotate_after_s=b.rotate_after_s)
        poller = Poller(rest, schedule, clock=clock, leased_symbols=leased_symbols_of(store),
                        order_symbols=orders.symbols, standby=lambda: not store.leading,
                        stream_trusted=lambda: (book.stream_state == "live"
                                                and vitals.proof.state == "proven"),
                        stops_far=lambda: not market.near_trigger())

        stream = UserDataStream(
            rest, ws_url=b.ws_url, clock=clock, keepalive_interval_s=b.keepalive_interval_s,
            rotate_after_s=b.rotate_after_s, max_silence_s=b.max_silence_s,
            reconnect_min_delay_s=b.reconnect_min_delay_s, reconnect_max_delay_s=b.reconnect_max_delay_s)
        guard = Guard(guard_policy(config))
        reaper = ReaperTask(rest, store, inbox.emit, clock, config.reaper,
                            max_rest_lag_ms=config.core.max_rest_lag_ms, lead=store,
                            read_lease_ends=store.lease_ends_in,
                            also_needs_leases=lambda: guard.needs_leases)

        def leases() -> Leases | None:
            ends = reaper.lease_ends
            return None if ends is None else Leases(ends, reaper.leases_read_ms)

        guard_task = GuardTask(guard, rest, store, leases,
                               stream_unproven=lambda: vitals.proof.state == "unproven",
                               lead=store)
        guard_task.events_maxlen = r.events_maxlen
        vitals.unprotected = guard.unprotected
        vitals.weight_used = lambda: rest.own_weight_1m
        vitals.ip_weight_used = lambda: rest.weight_used_1m
        vitals.orphans_removed = lambda: reaper.removed_total
        vitals.credentials_refused = lambda: "" if rest.auth_rejection is None else str(rest.auth_rejection)
        triggers = TriggerTask(market)
        vitals.trigger_watch = lambda: {
            "market_stream": "connected" if market.connected else "down",
            "market_streams": str(len(market.subscribed)),
            "trigger_crossings": str(triggers.watch.crossings),
            "triggers_not_acted": str(triggers.watch.not_acted)}
        metrics = _metrics_of(config, vitals, clock, lambda: reaper.last_decision,
                              guard.answers)
        runner = EffectsRunner(store, poller, reaper, vitals, store_timeout_s=2 * r.socket_timeout_s,
                               reconnect=stream.request_blind_reconnect, observer=metrics,
                               guard=guard_task)
        policy = canary_policy(config.stream)
        canary = None if policy is None else CanaryTask(
            rest, inbox.emit, clock, symbol=config.stream.canary_symbol, policy=policy,
            stream_live=lambda: book.stream_state == "live" and store.leading)
        observers = (poller.observe, guard_task.observe, *(() if canary is None else (canary.observe,)),
                     *(() if metrics is None else (metrics.observe_event,)))
        core = CoreLoop(inbox, book, orders, runner, vitals, notifier, clock,
                        status_interval_s=_STATUS_INTERVAL_S, reaper_step=reaper.step,
                        observers=observers, triggers=triggers, guard_step=guard_task.step)

        async def take_over() -> None:
            # Positions an earlier leader published that this instance never saw (it started
            # after they closed): tracked now, as at a restart, so the positions read below
            # publishes them and tells a change (core/book.py rule 10).
            published = await store.published_keys()
            book.expect(published, await store.last_shown(published))
            poller.take_over()
            told = await guard_task.told()  # before our own view is republished over it
            now_ms = clock.wall_ms()
            done = await store.take_over(vitals.health(now_ms).to_fields(), wall_ms=now_ms)
            guard_task.take_over(told)  # alerts computed as a standby (core/guard.py rule 7)
            logger.info("took the lead of account {} (fence {}): republished {} position(s)",
                        r.account, store.fence, done)

        tasks: dict[str, Coroutine[Any, Any, Any]] = {
            "core": core.run(),
            "stream": stream.run(inbox.emit),
            "market": market.run(inbox.emit),
            "poller": poller.run(inbox.emit),
            "ticker": run_ticker(inbox, config.service.tick_interval_s),
            "heartbeat": run_heartbeat(store, runner, vitals, clock, interval_s=r.heartbeat_interval_s,
                                       timeout_s=4 * r.socket_timeout_s),
            "reaper": reaper.run(),
            "lead": run_lead(store, take_over, clock, timeout_s=4 * r.socket_timeout_s,
                             on_other_leader=lambda leader: runner.drop_deferred(
                                 f"{leader} leads account {r.account} now")),
            "guard": guard_task.run(),
            "credentials": _refused_before_ready(rest, vitals, config.service.tick_interval_s),
        }
        if canary is not None:
            tasks["canary"] = canary.run()
        if metrics is not None:
            tasks["metrics"] = serve_metrics(metrics, config.metrics)
            # XREAD's block must end before the socket timeout would call Redis unreachable.
            tasks["metrics-events"] = tail_events(
                store, metrics, block_ms=max(1, int(min(1.0, r.socket_timeout_s / 2) * 1000)))
        if notifier.keepalive_interval_s < config.service.tick_interval_s:
            logger.warning("systemd keepalive due every {:.2f}s but [service] tick_interval_s is {:.2f}s: "
                           "raise WatchdogSec= or lower the tick", notifier.keepalive_interval_s,
                           config.service.tick_interval_s)
        logger.info("position-watchdog {} starting: account={} rest={} ws={} reaper={}", __version__,
                    r.account, b.rest_url, b.ws_url, vitals.reaper)
        notifier.status("starting: connecting to Binance and Redis")
        with _settled_gc():
            try:
                async with asyncio.TaskGroup() as tg:
                    # ``stop`` first: it must be inside its ``try`` before any sibling can fail (a
                    # task cancelled before its first step never runs its ``except``, so nothing
                    # re-cancels).
                    started: list[asyncio.Task[Any]] = []
                    tg.create_task(_stop_when(stop, started, notifier), name="stop")
                    started += [tg.create_task(coro, name=name) for name, coro in tasks.items()]
                    for task in started:
                        task.add_done_callback(_report_failure)
            except BaseException:
                # No Redis write on this path: Redis may be the very thing that failed.
                logger.warning("not a graceful stop: the health hash is left to expire (within "
                               "{} ms)", r.health_ttl_ms)
                raise
            await _mark_stopped(store, timeout_s=2 * r.socket_timeout_s)
    return 0


async def _refused_before_ready(rest: BinanceRest, vitals: Vitals, interval_s: float) -> None:
    """Until the first snapshot is published, refused credentials end the daemon (exit 77: a
    restart cannot fix them). After that they degrade it instead (``Vitals.problems``): a key
    revoked mid-run must not take the watchdog, and the bots' vetoes, away."""
    while not vitals.ready:
        if rest.auth_rejection is not None:
            raise rest.auth_rejection
        await asyncio.sleep(interval_s)


async def _unless_stopped(stop: asyncio.Event, step: Coroutine[Any, Any, None]) -> bool:
    """Run a startup ``step`` unless ``stop`` is set first; False when stopped (step cancelled
    until it has ended, see ``_cancel_until_done``). The step's own error propagates."""
    task = asyncio.create_task(step, name="startup")
    stopped = asyncio.create_task(stop.wait(), name="startup-stop")
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            await _cancel_until_done([task])
        stopped.cancel()
    if task.cancelled():
        return False
    task.result()  # raises what the step raised
    return True


async def _mark_stopped(store: RedisPublisher, *, timeout_s: float) -> None:
    """Make a graceful stop visible at once: bots get ``watchdog_down`` now, not when the health
    hash expires (up to ``health_ttl_ms`` later). Runs after every task, the heartbeat included,
    has ended, so no beat can bring the hash back. A failed task never leads here (its cause may
    be Redis itself; the hash then expires by its TTL). Redis unreachable now: logged, exit 0."""
    try:
        async with asyncio.timeout(timeout_s):
            outcome = await store.mark_stopped()
    except (StoreError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError):
            raise_if_cancelling(exc)
        logger.warning("could not mark the watchdog stopped in Redis ({}); bots see it down once "
                       "the health hash expires", str(exc) or f"timed out after {timeout_s:.1f}s")
        return
    if outcome == "other":
        logger.info("health hash left alone: another instance leads this account now")
    elif outcome == "standby":
        logger.info("standby stopped: unregistered, nothing else to remove")
    else:
        logger.info("marked stopped in Redis (health hash {}): bots now get watchdog_down", outcome)


def _report_failure(task: asyncio.Task[Any]) -> None:
    """Log a failed task with its name, and tag its error so ``cli.py`` can name the task too."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    exc.add_note(f"task: {task.get_name()}")
    logger.error("task {} failed: {}: {}", task.get_name(), type(exc).__name__, exc)


async def _stop_when(stop: asyncio.Event, siblings: list[asyncio.Task[Any]], notifier: Notifier) -> None:
    """End every other task on ``stop`` (graceful), or when the group aborts (a task failed).

    Why not rely on the TaskGroup's single ``cancel()``: redis-py 8.1's asyncio client on Python
    3.11 loses a cancellation that lands inside a command (measured: 17-27 of 40 cancels of a
    ``GET`` loop were swallowed), and the task goes on as if nothing happened, so the group would
    wait forever. Cancelling again until each task has ended makes stopping certain.
    """
    try:
        await stop.wait()
    except asyncio.CancelledError:
        await _cancel_until_done(siblings)  # another task failed: the group is aborting
        raise
    logger.info("stopping on signal; the listen key stays alive for the bot")
    notifier.stopping(status="stopping on signal")
    await _cancel_until_done(siblings)


async def _cancel_until_done(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` every ``_RECANCEL_INTERVAL_S`` until each has ended. A cancellation of
    this task meanwhile (the group aborting because a task failed while stopping) is kept and
    raised at the end: the re-cancelling must not stop before the siblings do."""
    rounds = 0
    interrupted: asyncio.CancelledError | None = None
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        try:
            await asyncio.wait(pending, timeout=_RECANCEL_INTERVAL_S)
        except asyncio.CancelledError as exc:
            interrupted = exc
        rounds += 1
        if rounds % 10 == 0:
            logger.warning("still stopping: {} ignored cancellation",
                           ", ".join(task.get_name() for task in pending if not task.done()))
    if interrupted is not None:
        raise interrupted


@contextlib.contextmanager
def _settled_gc() -> Iterator[None]:
    """Freeze what startup built and collect the young generation less often, while running.

    Why: the daemon's own objects (modules, adapters, scripts) never become garbage, yet every
    full collection walked them. What a frame allocates dies by reference counting; what
    outlives it (events queued in a burst, the duplicate filter's ids, tombstones) is no
    garbage either, yet every 700 of those started a collection that walked them all: ~7 µs
    per event and pauses up to 70 ms in a flood (docs/BENCHMARKS.md, What was optimised).
    Undone on exit (tests run the daemon in-process).
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM/SIGINT → ``stop.set()`` for the duration (the loop's own handlers, not Python's)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError) as exc:
            # Not the main thread (tests run the daemon in a thread or with their own stop event).
            logger.debug("cannot install {} handler: {}", sig.name, exc)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def leased_symbols_of(store: LeaseSource) -> Callable[[], Awaitable[Collection[str]]]:
    """Symbols under a bot's lease, for the poller's fast polling (none while Redis is down)."""

    async def leased() -> Collection[str]:
        try:
            return {key.symbol for key in await store.leased_symbols()}
        except StoreError as exc:
            # Fast polling is an optimisation; the outage itself is shown by the heartbeat.
            logger.debug("leases unreadable, polling at the normal pace: {}", exc)
            return ()

    return leased


# core/guard.py rule 8: an open position's orders are read by REST at least this often even
# while the stream says nothing (it may be muted): 2 weight per open symbol per period, asked as
# a priority read (docs/GUARD.md, Figures).
DOUBT_MS = 15_000


def guard_policy(config: Config) -> GuardPolicy:
    """The pure guard policy from ``[guard]``; orders count as fresh without the stream for
    three order polls (one failed read is not yet doubt), never less than ``[core] max_age_ms``."""
    g = config.guard
    return GuardPolicy(
        alert_ms=g.unprotected_alert_ms, emergency_stop_pct=Decimal(str(g.emergency_stop_pct)),
        emergency_after_ms=g.emergency_after_ms, max_orders_per_min=g.max_orders_per_min,
        orders_max_age_ms=max(config.core.max_age_ms,
                              round(3 * config.binance.orders_poll_interval_s * 1000)),
        doubt_ms=DOUBT_MS)


def _progress_limit_s(config: Config) -> float:
    """How long the poller and the heartbeat may stay silent before the keepalive stops."""
    b, r = config.binance, config.redis
    slowest = max(b.poll_interval_s + 2 * b.request_timeout_s,
                  r.heartbeat_interval_s + 4 * r.socket_timeout_s)
    return max(10.0, 3 * slowest)


def _metrics_of(config: Config, vitals: Vitals, clock: Clock,
                reaper_decision: Callable[[], ReaperDecision | None],
                protection: Callable[[], Mapping[PositionKey, tuple[str, int | None]]] = dict,
                ) -> Metrics | None:
    """The metrics observer when ``[metrics]`` exports somewhere; None costs nothing at all."""
    if not (config.metrics.listen or config.metrics.textfile_path):
        return None
    return Metrics(vitals, clock, account=config.redis.account, reaper_decision=reaper_decision,
                   protection=protection)


def _reaper_mode(config: Config) -> str:
    if not config.reaper.enabled:
        return "off"
    return "dry-run" if config.reaper.dry_run else "on"
