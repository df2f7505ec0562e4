"""``run(config, credentials)``: runs the pipeline ``build()`` wires (one per account of
``[[accounts]]``, build.py rule 4), and owns THE TaskGroup.

The parts and the data path are ``build.py``'s (the tests and benchmarks run the same
pipeline); this module adds what only the process has: signals, the systemd notifier, the GC
settings, refused credentials before the first snapshot (exit 77), and the stop.

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
import signal
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any

from loguru import logger

from watchdog import __version__
from watchdog.binance.rest import BinanceRest
from watchdog.cancel import raise_if_cancelling
from watchdog.clock import Clock, SystemClock
from watchdog.config import Config, Credentials, account_configs
from watchdog.errors import ConfigError, StoreError
from watchdog.runtime.build import Endpoints, Pipeline, Shared, build, shared_tasks
from watchdog.runtime.share import FairShare
from watchdog.runtime.systemd import Notifier
from watchdog.runtime.vitals import Vitals
from watchdog.store.publisher import RedisPublisher

__all__ = ["run"]

_RECANCEL_INTERVAL_S = 0.2
_GC_THRESHOLDS = (10_000, 10, 10)  # CPython's default first threshold is 700


async def run(config: Config, credentials: Credentials | Mapping[str, Credentials], *,
              clock: Clock | None = None, notifier: Notifier | None = None,
              stop: asyncio.Event | None = None) -> int:
    """Run the watchdog until ``stop`` is set (SIGTERM/SIGINT set it); returns 0 then.

    ``credentials``: the one account's, or each account's by name (``[[accounts]]``,
    ``config.load_account_credentials``).

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


async def _run(config: Config, credentials: Credentials | Mapping[str, Credentials],
               clock: Clock, notifier: Notifier, stop: asyncio.Event) -> int:
    b, r = config.binance, config.redis
    configs = account_configs(config)
    keyed = ({configs[0].redis.account: credentials} if isinstance(credentials, Credentials)
             else credentials)
    missing = [c.redis.account for c in configs if c.redis.account not in keyed]
    if missing:
        raise ConfigError("credentials", "accounts", missing[0], "no credentials given")
    # One account: alone, as always. Several: one weight budget per IP, one instance id, the
    # fair share of leads (build.py rule 4); task names then carry the account.
    shared = Shared() if len(configs) > 1 else None
    async with contextlib.AsyncExitStack() as stack:
        pipelines = [await stack.enter_async_context(
                         build(c, keyed[c.redis.account], clock, Endpoints(notifier=notifier), shared))
                     for c in configs]
        if shared is not None:
            shared.share = FairShare([p.store for p in pipelines], clock)
        if not await _unless_stopped(stop, _start_all(pipelines)):
            logger.info("stopping on signal during startup: nothing was published, nothing left "
                        "on the exchange")
            notifier.stopping(status="stopping on signal during startup")
            return 0
        tasks: dict[str, Coroutine[Any, Any, Any]] = {}
        for pipeline in pipelines:
            prefix = f"{pipeline.config.redis.account}/" if shared is not None else ""
            own = pipeline.tasks()
            own["credentials"] = _refused_before_ready(pipeline.rest, pipeline.vitals,
                                                       config.service.tick_interval_s)
            tasks.update({prefix + name: coro for name, coro in own.items()})
        if shared is not None:
            tasks.update(shared_tasks(shared))  # the user-data connections the accounts share
        if notifier.keepalive_interval_s < config.service.tick_interval_s:
            logger.warning("systemd keepalive due every {:.2f}s but [service] tick_interval_s is {:.2f}s: "
                           "raise WatchdogSec= or lower the tick", notifier.keepalive_interval_s,
                           config.service.tick_interval_s)
        logger.info("position-watchdog {} starting: account={} rest={} ws={} reaper={}", __version__,
                    ",".join(c.redis.account for c in configs), b.rest_url, b.ws_url,
                    pipelines[0].vitals.reaper)
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
            for pipeline in pipelines:
                await _mark_stopped(pipeline.store, timeout_s=2 * r.socket_timeout_s)
    return 0


async def _start_all(pipelines: list[Pipeline]) -> None:
    """Every account's startup at once (``Pipeline.start``); the first error propagates."""
    if len(pipelines) == 1:
        await pipelines[0].start()
        return
    async with asyncio.TaskGroup() as tg:
        for pipeline in pipelines:
            tg.create_task(pipeline.start(), name=f"startup {pipeline.config.redis.account}")


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
