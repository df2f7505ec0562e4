"""``build()``: the one wiring of the watchdog, run by the daemon, the tests and the benchmarks.

What is tested is what ships: ``daemon.run`` runs the ``Pipeline`` this returns, and so do the
integration tests' rig (``tests/support/reaper_rig.py``) and the benchmarks. The data path::

    stream ─┐
    market ─┤ (StopCrossed: a public price crossed an open stop's trigger)
    poller ─┼─► Inbox ─► core (PositionBook + OrderBook) ─► EffectsRunner ─► Redis (store)
    ticker ─┘                 │                                   ├─► poller (RequestSnapshot)
                              └─► sd_notify READY/WATCHDOG/STATUS ├─► reaper (CancelOrder)
                                                                  └─► metrics (observer, [metrics])
    heartbeat: health hash every [redis] heartbeat_interval_s; writes what Redis missed

Rules of this module:
1. Everything is built from ``Config``, the credentials and one ``Clock``; ``Endpoints`` may put
   a caller's own part in place of one built from the config (a Binance HTTP client, the store,
   the reaper's positions read) or watch the pipeline (the core's events, the effects run), and
   nothing else: there is no second wiring to keep in step.
2. Building does no I/O. ``Pipeline.start`` is the startup (Redis, the lead, Binance's clock);
   ``Pipeline.tasks`` are the long-running coroutines, each one named task; the caller owns
   the TaskGroup (the daemon adds its stop and process concerns).
3. The HTTP client and the store are closed when ``build``'s context ends, unless the caller
   gave them (then they are the caller's).
4. Several accounts in one process (``[[accounts]]``): one ``build`` per account, all given the
   same ``Shared``: one weight budget per REST URL (Binance's limit is the IP's), one instance id
   and the fair share of leads (runtime/share.py), one event-loop stall watch (runtime/stalls.py:
   one stall, one WARNING), and the user-data connections per WebSocket
   URL (``binance/shared_stream.py``: several listen keys on one connection; its ``run`` is a
   task of the caller's, ``shared_tasks``). Without it a pipeline is alone, as before.
5. The start reads positions once: the stream's post-connect snapshot (requested after its
   connect, stream.py rule 2) is the start's snapshot *and* its credential check (with the
   listen key before it: key, secret, futures permission, IP whitelist); refused before the
   first snapshot is published, the daemon exits 77 (daemon.py ``_refused_before_ready``).
   The poller's first scheduled read waits one ``poll_interval_s`` for it (the stream's read
   serves it, poller.py rule 2) and goes then if the stream could not connect. A discarded
   check of its own and a first poll 2 ms before the stream's read cost 10 weight in the
   start's minute, the one minute whose detection misses 1.0 s (docs/BENCHMARKS.md, session 7).
6. One takeover: every acquisition of the lead after the start runs ``Pipeline.take_over``,
   the lead task's (``on_takeover``) and a refused heartbeat's that found the lease free (the
   store's ``on_take_over``, store/publisher.py rule 3). Until session 9 the heartbeat's ran
   only the store's part: the guard was not handed what the other leader told nor started a
   lead term (core/guard.py rules 1c and 7), and the poller read nothing at once. The start's
   own acquisition is not a takeover: the guard's term and the reads begin there (rule 5).
7. One takeover at a time. After Redis lost its data the heartbeat and the lead task may both
   take the lease back (store/lead.py rule 1), and a beat refused inside a takeover's own first
   beat takes it again: a takeover asked for while one runs joins it (awaits its end), and the
   running one then runs once more, under the newest token; the nested beat's (same task, which
   a lock would deadlock) runs the store's part at once (the health hash names the new token
   before anything else is written) and leaves the rest to that pass. A pass again reads what
   is told again but hands the guard the first pass's start of each run (``told_again``): what
   Redis shows now may be this instance's own standby answer, republished by the first pass.
   Until session 10 two takeovers ran interleaved: the second read what was told after the
   first's republish and handed the guard this instance's own start as the one bots were told;
   and after a flush inside a takeover the outer one handed the guard, last, an alert read
   before the loss, so the alert lost with the data was never sent again
   (tests/runtime/test_takeover_race.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx
from loguru import logger

from watchdog import __version__
from watchdog.binance.http11 import RestHttp, rest_http
from watchdog.binance.market_stream import MarketStream
from watchdog.binance.poller import Poller, PollSchedule
from watchdog.binance.protocol.budget import WeightBudget
from watchdog.binance.protocol.weights import IP_WEIGHT_LIMIT_PER_MIN
from watchdog.binance.rest import BinanceRest
from watchdog.binance.shared_stream import SharedUserStreams
from watchdog.binance.stream import UserDataStream
from watchdog.clock import Clock
from watchdog.config import Config, Credentials, calm_poll_interval_s
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.core.effects import Effect
from watchdog.core.events import Event
from watchdog.core.guard import Guard, GuardPolicy, Leases, Told
from watchdog.core.model import PositionKey
from watchdog.core.orders import OrderBook
from watchdog.core.proof import StreamProof
from watchdog.core.reaper import ReaperDecision
from watchdog.errors import ExchangeError, StoreError, StoreUnavailable
from watchdog.runtime.canary_task import CanaryTask, canary_policy
from watchdog.runtime.effects_runner import EffectsObserver, EffectsRunner
from watchdog.runtime.guard_task import GuardTask
from watchdog.runtime.lead_task import run_lead
from watchdog.runtime.loops import CoreLoop, Inbox, TickDue, run_heartbeat, run_ticker
from watchdog.runtime.metrics import Metrics
from watchdog.runtime.metrics_serve import serve_metrics, tail_events
from watchdog.runtime.reaper_after_cancel import ReadPositions
from watchdog.runtime.reaper_task import ReaperTask, bracketed_reader
from watchdog.runtime.share import FairShare, LeadersBudget, SweepSlots
from watchdog.runtime.stalls import LoopStalls, Woke
from watchdog.runtime.systemd import Notifier
from watchdog.runtime.ticker import Ticker
from watchdog.runtime.trigger_task import TriggerTask
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.lead import new_instance_id
from watchdog.store.publisher import RedisPublisher

__all__ = ["INBOX_SIZE", "Endpoints", "LeaseSource", "Pipeline", "Shared", "build", "guard_policy",
           "leased_symbols_of", "rest_of", "store_of"]

INBOX_SIZE = 10_000  # ~seconds of a busy account's events: room to ride out a slow Redis write
_STATUS_INTERVAL_S = 30.0


class LeaseSource(Protocol):
    """What the poller's fast pace needs of ``RedisPublisher``."""

    async def leased_symbols(self) -> frozenset[PositionKey]: ...


@dataclass(frozen=True)
class Endpoints:
    """What a caller puts in place of a part built from the config, or watches (rule 1).

    ``http``: the Binance REST client (base URL and timeout are then the caller's);
    ``store``: the Redis publisher; ``wrap_reader``: wraps the reaper's bracketed positions read
    (a test makes the race happen right after it); ``observers``: see every event the core
    applies, before it does; ``effects``: sees every batch of effects the runner ran;
    ``notifier``: systemd's (the default one does nothing outside systemd).
    """

    http: RestHttp | None = None
    store: RedisPublisher | None = None
    wrap_reader: Callable[[ReadPositions], ReadPositions] | None = None
    observers: tuple[Callable[[Event], None], ...] = ()
    effects: EffectsObserver | None = None
    notifier: Notifier | None = None


@dataclass
class Shared:
    """What the pipelines of one process share (rule 4). ``share`` is set by the caller once
    every pipeline is built (it needs their stores)."""

    instance: str = field(default_factory=new_instance_id)
    streams: dict[str, SharedUserStreams] = field(default_factory=dict)  # by [binance] ws_url
    budgets: dict[str, WeightBudget] = field(default_factory=dict)
    share: FairShare | None = None
    stores: dict[str, list[RedisPublisher]] = field(default_factory=dict)  # by rest_url
    sweeps: dict[str, SweepSlots] = field(default_factory=dict)  # by rest_url
    stalls: LoopStalls = field(default_factory=LoopStalls)  # one per process (stalls.py rule 5)

    def budget(self, config: Config) -> WeightBudget:
        """The one budget of ``[binance] rest_url`` (its size from the first account's config:
        ``[binance]`` is common to all accounts of a file). Each leading account's poller
        paces from it (``LeadersBudget.sharers``: the accounts this instance leads there)."""
        url = config.binance.rest_url
        if url not in self.budgets:
            self.budgets[url] = LeadersBudget(_weight_budget_1m(config),
                                              lambda: self.leading_on(url))
        return self.budgets[url]

    def sweep_slots(self, config: Config) -> SweepSlots:
        """The orders sweeps of the accounts on ``[binance] rest_url``, spread (share.py)."""
        url = config.binance.rest_url
        if url not in self.sweeps:
            self.sweeps[url] = SweepSlots(_weight_budget_1m(config))
        return self.sweeps[url]

    def join(self, config: Config, store: RedisPublisher) -> None:
        """``store``'s account spends from the budget of its ``rest_url``."""
        self.stores.setdefault(config.binance.rest_url, []).append(store)

    def leading_on(self, url: str) -> int:
        """How many accounts on ``url`` this instance leads now."""
        return sum(1 for store in self.stores.get(url, ()) if store.leading)


@dataclass
class _TakeOver:
    """The takeover running (rule 7): the task running it, its result for whoever joins it,
    and whether the lead was taken again meanwhile (it then runs once more)."""

    owner: asyncio.Task[Any] | None
    done: asyncio.Future[int]
    again: bool = False


def told_again(first: Mapping[PositionKey, Told], now: Mapping[PositionKey, Told]
               ) -> dict[PositionKey, Told]:
    """Rule 7: what a takeover's pass again hands the guard. Whether an alert stands is what
    Redis shows now (one lost with the data is not shown: it is sent again); a run's start is
    the one the first pass read, before this instance wrote anything (what Redis shows now
    may be this instance's own republished standby answer)."""
    handed: dict[PositionKey, Told] = {}
    for key in first.keys() | now.keys():
        was, shown = first.get(key), now.get(key)
        since = was.since_ms if was is not None and was.since_ms is not None else (
            None if shown is None else shown.since_ms)
        alerted = shown is not None and shown.alerted
        if since is not None or alerted:
            handed[key] = Told(since, alerted)
    return handed


@dataclass
class Pipeline:
    """The wired watchdog: its parts (read by status, tests and benchmarks) and its tasks."""

    config: Config
    clock: Clock
    rest: BinanceRest
    store: RedisPublisher
    book: PositionBook
    orders: OrderBook
    vitals: Vitals
    inbox: Inbox
    poller: Poller
    stream: UserDataStream
    market: MarketStream
    guard: Guard
    guard_task: GuardTask
    reaper: ReaperTask
    triggers: TriggerTask
    runner: EffectsRunner
    core: CoreLoop
    notifier: Notifier
    canary: CanaryTask | None = None
    metrics: Metrics | None = None
    shared: Shared | None = None
    ticker: Ticker | None = None
    stalls: LoopStalls | None = None  # the event-loop stall watch (runtime/stalls.py)
    stall_label: str = ""  # this account, when the process runs several (stalls.py rule 5)
    takeovers_joined: int = 0  # rule 7: acquisitions that joined a takeover already running
    _taking: _TakeOver | None = field(default=None, repr=False)

    async def start(self) -> None:
        """The startup (rule 2): Redis, the lead, positions closed while down, Binance's clock.
        Raises what Redis raises; Binance unreachable is logged and the pipeline starts anyway.
        Refused credentials are met by the first signed read, the start's snapshot (rule 5)."""
        store, book, rest = self.store, self.book, self.rest
        await store.start()
        # The lead at once when free (one instance: always, unless its own crashed run's
        # lease still runs, for at most lead_ttl_ms); else a hot standby (docs/HA.md). With
        # several accounts, only within this instance's fair share (rule 4).
        share = self.shared.share if self.shared is not None else None
        if not await (store.acquire() if share is None
                      else share.acquire(store, announce=False)):
            logger.info("standby: {} leads account {}", store.leader, self.config.redis.account)
        # Closed while we were down → published closed, and told (position_closed, while_down).
        published = await store.published_keys()
        book.expect(published, await store.last_shown(published))
        try:
            await rest.sync_time()
        except ExchangeError as exc:
            # Start anyway: the heartbeat then shows an alive-but-blind watchdog (degraded,
            # REST failing) instead of a missing one, and the stream/poller keep retrying;
            # signed calls use offset 0 until a -1021 makes the client re-sync.
            logger.warning("Binance unreachable at startup: {}", exc)
        # Rule 5: the stream's post-connect read is the start's one positions read; the
        # poller's first waits an interval for it (it goes then if the stream cannot connect).
        self.poller.schedule.defer_positions(self.clock.monotonic()
                                             + self.config.binance.poll_interval_s)

    async def take_over(self) -> int:
        """This instance became the leader: catch up with what an earlier leader published.
        The one takeover (rule 6): the lead task's acquisition and a refused beat's both run
        it, one at a time (rule 7). Returns how many views the store republished."""
        running = self._taking
        if running is not None:
            running.again = True
            if asyncio.current_task() is running.owner:
                # Rule 7: a refused beat inside this takeover's own first beat took the lead
                # again (Redis lost its data meanwhile). Its store part now, so nothing is
                # written before the health hash names the new token; the rest once more
                # when the running pass ends (what was read as told before the loss is gone).
                logger.warning("the lead was taken again during the takeover of account {} "
                               "(fence {}): it runs once more", self.config.redis.account,
                               self.store.fence)
                now_ms = self.clock.wall_ms()
                return await self.store.take_over(self.vitals.health(now_ms).to_fields(),
                                                  wall_ms=now_ms)
            self.takeovers_joined += 1
            logger.info("a takeover of account {} runs already: this acquisition (fence {}) "
                        "joins it", self.config.redis.account, self.store.fence)
            return await asyncio.shield(running.done)
        running = self._taking = _TakeOver(asyncio.current_task(),
                                           asyncio.get_running_loop().create_future())
        try:
            done, first = await self._take_over_once(None)
            while running.again:
                running.again = False
                done, _ = await self._take_over_once(first)
        except BaseException as exc:
            # The joiners learn it as the owner does; a cancelled (timed out) owner is a
            # takeover not finished, which the heartbeat and the lead task log and retry.
            running.done.set_exception(exc if isinstance(exc, StoreError) else StoreUnavailable(
                f"the takeover of account {self.config.redis.account} did not finish: "
                f"{type(exc).__name__} {exc}"))
            running.done.exception()  # retrieved: there may be no joiner
            raise
        else:
            running.done.set_result(done)
        finally:
            self._taking = None
        return done

    async def _take_over_once(self, first: Mapping[PositionKey, Told] | None
                              ) -> tuple[int, dict[PositionKey, Told]]:
        """One pass of the takeover; ``first``: what the first pass read as told, when this is
        a pass again (rule 7). Returns the views republished and what was read as told."""
        store, book = self.store, self.book
        # Positions an earlier leader published that this instance never saw (it started
        # after they closed): tracked now, as at a restart, so the positions read below
        # publishes them and tells a change (core/book.py rule 10).
        published = await store.published_keys()
        book.expect(published, await store.last_shown(published))
        self.poller.take_over()
        if first is None:
            told = await self.guard_task.told()  # before our own view is republished over it
        now_ms = self.clock.wall_ms()
        done = await store.take_over(self.vitals.health(now_ms).to_fields(), wall_ms=now_ms,
                                     again=first is not None)
        # What the core ran before that first beat was deferred (effects_runner.py rule 6):
        # written now, not a heartbeat later.
        await self.runner.recover()
        if first is None:
            handed = told
        else:  # rule 7: alerts as Redis shows them after what this instance wrote (its own
            # deferred ones included: read before, they would be sent again), starts as first read
            told = await self.guard_task.told()
            handed = told_again(first, told)
        self.guard_task.take_over(handed)  # alerts computed as a standby (core/guard.py rule 7)
        self.reaper.poke()  # the guard may need leases now (its unalerted runs)
        if self.ticker is not None:
            self.ticker.poke()  # the reaper and the guard act now: a Tick (loops.py rule 5)
        logger.info("took the lead of account {} (fence {}): republished {} position(s)",
                    self.config.redis.account, store.fence, done)
        return done, told

    def tasks(self) -> dict[str, Coroutine[Any, Any, Any]]:
        """The long-running coroutines by task name (rule 2); call once."""
        config, r = self.config, self.config.redis
        runner, store = self.runner, self.store
        woke = _woke_of(self.stalls, self.stall_label)
        tasks: dict[str, Coroutine[Any, Any, Any]] = {
            "core": self.core.run(),
            "stream": self.stream.run(self.inbox.emit),
            "market": self.market.run(self.inbox.emit),
            "poller": self.poller.run(self.inbox.emit),
            "ticker": (self.ticker.run() if self.ticker is not None
                       else run_ticker(self.inbox, config.service.tick_interval_s)),
            "heartbeat": run_heartbeat(store, runner, self.vitals, self.clock,
                                       interval_s=r.heartbeat_interval_s,
                                       timeout_s=4 * r.socket_timeout_s,
                                       grid_s=config.service.tick_interval_s, woke=woke),
            "reaper": self.reaper.run(),
            "lead": run_lead(store, self.take_over, self.clock, timeout_s=4 * r.socket_timeout_s,
                             on_other_leader=lambda leader: runner.drop_deferred(
                                 f"{leader} leads account {r.account} now"),
                             on_lapse=runner.lead_lapsed,
                             share=self.shared.share if self.shared is not None else None,
                             grid_s=config.service.tick_interval_s, woke=woke),
            "guard": self.guard_task.run(),
        }
        if self.canary is not None:
            tasks["canary"] = self.canary.run()
        if self.metrics is not None:
            tasks["metrics"] = serve_metrics(self.metrics, config.metrics)
            # XREAD's block must end before the socket timeout would call Redis unreachable.
            tasks["metrics-events"] = tail_events(
                store, self.metrics, block_ms=max(1, int(min(1.0, r.socket_timeout_s / 2) * 1000)))
        return tasks


@contextlib.asynccontextmanager
async def build(config: Config, credentials: Credentials, clock: Clock,
                endpoints: Endpoints | None = None,
                shared: Shared | None = None) -> AsyncIterator[Pipeline]:
    """The wired pipeline (module rules); its HTTP client and store closed on exit (rule 3);
    ``shared``: the other accounts' pipelines of this process (rule 4)."""
    ends = endpoints or Endpoints()
    b = config.binance
    # Versions must keep growing across restarts, or Redis' compare-and-set would refuse every
    # write of this run until it caught up with the last one (a closure would never show).
    book = PositionBook(BookPolicy(max_age_ms=config.core.max_age_ms,
                                   max_rest_lag_ms=config.core.max_rest_lag_ms),
                        version_base=clock.wall_ms() * 1000)
    vitals = Vitals(
        Identity(os.getpid(), socket.gethostname(), __version__, clock.wall_ms()), book,
        weight_budget_1m=_weight_budget_1m(config), progress_limit_s=_progress_limit_s(config),
        reaper=_reaper_mode(config), proof=StreamProof(max_rest_lag_ms=config.core.max_rest_lag_ms))
    async with contextlib.AsyncExitStack() as stack:
        http: RestHttp
        if ends.http is not None:
            http = ends.http
        else:
            http = await stack.enter_async_context(rest_http(b.rest_url, b.request_timeout_s))
        rest = rest_of(config, credentials, clock, http,
                       budget=shared.budget(config) if shared is not None else None)
        store = ends.store
        if store is None:
            store = store_of(config, instance=shared.instance if shared is not None else "")
            stack.push_async_callback(store.close)
        if shared is not None:
            shared.join(config, store)
        pipeline = _wire(config, clock, ends, book, vitals, rest, store,
                         sweep_slots=shared.sweep_slots(config) if shared is not None else None,
                         stalls=shared.stalls if shared is not None else LoopStalls(),
                         stall_label=config.redis.account if shared is not None else "")
        pipeline.shared = shared
        # Rule 6: a beat that takes the lead back runs the same takeover as the lead task.
        store.on_take_over = pipeline.take_over
        stack.callback(setattr, store, "on_take_over", None)
        if shared is not None:
            share_stream(shared, config, clock, pipeline.stream)
        yield pipeline


def rest_of(config: Config, credentials: Credentials, clock: Clock,
            http: RestHttp, budget: WeightBudget | None = None) -> BinanceRest:
    """The Binance REST client as the daemon has it (``[binance]``: recvWindow, timeout and
    ``weight_budget_pct`` of Binance's 2400 weight/min), on ``http``; ``budget``: the one
    shared with the other accounts on this IP (rule 4)."""
    b = config.binance
    return BinanceRest(http, credentials, recv_window_ms=b.recv_window_ms, clock=clock,
                       weight_budget_per_min=_weight_budget_1m(config),
                       timeout=httpx.Timeout(b.request_timeout_s), budget=budget)


def store_of(config: Config, cls: type[RedisPublisher] = RedisPublisher,
             instance: str = "") -> RedisPublisher:
    """The Redis publisher as the daemon has it (``[redis]`` and ``[veto] max_age_ms``); not
    started. ``cls``: a test's subclass; ``instance``: the process's id (rule 4)."""
    r = config.redis
    return cls.from_url(r.url, account=r.account, health_ttl_ms=r.health_ttl_ms,
                        closed_ttl_s=r.closed_ttl_s, events_maxlen=r.events_maxlen,
                        veto_max_age_ms=config.veto.max_age_ms,
                        socket_timeout_s=r.socket_timeout_s, lead_ttl_ms=r.lead_ttl_ms,
                        instance=instance, **r.client_options())


def share_stream(shared: Shared, config: Config, clock: Clock, stream: UserDataStream) -> None:
    """Rule 4: ``stream`` opens lanes of the user-data connections shared by the accounts on
    ``[binance] ws_url`` (binance/shared_stream.py), which may ask it to rotate."""
    url = config.binance.ws_url
    if url not in shared.streams:
        shared.streams[url] = SharedUserStreams(url, clock)
    streams = shared.streams[url]
    stream.use_connections(streams.connector(config.redis.account))
    streams.bind(config.redis.account, stream.request_rotation)


def shared_tasks(shared: Shared) -> dict[str, Coroutine[Any, Any, Any]]:
    """The process's own long-running coroutines (rule 2): the shared user-data connections."""
    return {f"user-streams-{i}": streams.run()
            for i, streams in enumerate(shared.streams.values(), 1)}


def schedule_of(config: Config) -> PollSchedule:
    """The poll schedule as the daemon has it (``[binance]`` intervals; the calm interval
    clamped by ``config.calm_poll_interval_s``)."""
    b = config.binance
    return PollSchedule(poll_interval_s=b.poll_interval_s,
                        orders_poll_interval_s=b.orders_poll_interval_s,
                        fast_poll_interval_s=b.fast_poll_interval_s,
                        orders_sweep_interval_s=b.orders_sweep_interval_s,
                        idle_poll_interval_s=calm_poll_interval_s(config))


def _woke_of(stalls: LoopStalls | None,
             label: str) -> Woke | None:
    """What a timer tells the stall watch; with several accounts, each names its own."""
    if stalls is None:
        return None
    return stalls.labelled(label) if label else stalls.woke


def _weight_budget_1m(config: Config) -> int:
    return IP_WEIGHT_LIMIT_PER_MIN * config.binance.weight_budget_pct // 100


def _wire(config: Config, clock: Clock, ends: Endpoints, book: PositionBook, vitals: Vitals,
          rest: BinanceRest, store: RedisPublisher, sweep_slots: SweepSlots | None = None,
          stalls: LoopStalls | None = None, stall_label: str = "") -> Pipeline:
    b, r = config.binance, config.redis
    inbox = Inbox(INBOX_SIZE)
    orders = OrderBook(max_rest_lag_ms=config.core.max_rest_lag_ms)
    # Trigger watching (issue 13): the public prices the open stops trigger on.
    market = MarketStream(ws_url=b.ws_url, clock=clock, max_silence_s=b.max_silence_s,
                          reconnect_min_delay_s=b.reconnect_min_delay_s,
                          reconnect_max_delay_s=b.reconnect_max_delay_s,
                          rotate_after_s=b.rotate_after_s)
    schedule = schedule_of(config)
    poller = Poller(rest, schedule, clock=clock,
                    leased_symbols=leased_symbols_of(store), order_symbols=orders.symbols,
                    standby=lambda: not store.leading,
                    stream_trusted=lambda: (book.stream_state == "live"
                                            and vitals.proof.state == "proven"),
                    stops_far=lambda: not market.near_trigger(),
                    sweep_plan=sweep_slots, woke=_woke_of(stalls, stall_label))

    stream = UserDataStream(
        rest, ws_url=b.ws_url, clock=clock, keepalive_interval_s=b.keepalive_interval_s,
        rotate_after_s=b.rotate_after_s, max_silence_s=b.max_silence_s,
        reconnect_min_delay_s=b.reconnect_min_delay_s, reconnect_max_delay_s=b.reconnect_max_delay_s)
    guard = Guard(guard_policy(config))
    reader = bracketed_reader(rest, inbox.emit)
    reaper = ReaperTask(rest, store, inbox.emit, clock, config.reaper,
                        read_positions=ends.wrap_reader(reader) if ends.wrap_reader else reader,
                        max_rest_lag_ms=config.core.max_rest_lag_ms, lead=store,
                        read_lease_ends=store.lease_ends_in,
                        also_needs_leases=lambda: guard.needs_leases)

    def leases() -> Leases | None:
        ends_ms = reaper.lease_ends
        return None if ends_ms is None else Leases(ends_ms, reaper.leases_read_ms)

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
    metrics = _metrics_of(config, vitals, clock, lambda: reaper.last_decision, guard.answers,
                          stalls)
    observers: list[EffectsObserver] = [o for o in (metrics, ends.effects) if o is not None]
    runner = EffectsRunner(store, poller, reaper, vitals, store_timeout_s=2 * r.socket_timeout_s,
                           reconnect=stream.request_blind_reconnect,
                           standby=stream.prepare_standby,
                           observer=observers[0] if len(observers) == 1 else
                           _Observers(observers) if observers else None,
                           guard=guard_task)
    policy = canary_policy(config.stream)
    canary = None if policy is None else CanaryTask(
        rest, inbox.emit, clock, symbol=config.stream.canary_symbol, policy=policy,
        stream_live=lambda: book.stream_state == "live" and store.leading)
    notifier = ends.notifier or Notifier()
    event_observers = (poller.observe, guard_task.observe,
                       *(() if canary is None else (canary.observe,)),
                       *(() if metrics is None else (metrics.observe_event,)), *ends.observers)
    ticker = Ticker(inbox.emit, clock, grid_s=config.service.tick_interval_s,
                    woke=_woke_of(stalls, stall_label))
    guard_task.on_outcome = ticker.poke
    core = CoreLoop(inbox, book, orders, runner, vitals, notifier, clock,
                    status_interval_s=_STATUS_INTERVAL_S, reaper_step=reaper.step,
                    observers=event_observers, triggers=triggers, guard_step=guard_task.step,
                    after_batch=reaper.poke, ticker=ticker,
                    due=TickDue(wall_ms=(guard_task.next_due_ms,), busy=(reaper.wants_tick,),
                                books_changed=reaper.books_changed))
    return Pipeline(config=config, clock=clock, rest=rest, store=store, book=book, orders=orders,
                    vitals=vitals, inbox=inbox, poller=poller, stream=stream, market=market,
                    guard=guard, guard_task=guard_task, reaper=reaper, triggers=triggers,
                    runner=runner, core=core, notifier=notifier, canary=canary, metrics=metrics,
                    ticker=ticker, stalls=stalls, stall_label=stall_label)


class _Observers:
    """Several effects observers as one (the metrics and a caller's, rule 1)."""

    def __init__(self, observers: Sequence[EffectsObserver]) -> None:
        self._observers = tuple(observers)

    def effects_run(self, effects: Sequence[Effect], *, written: bool) -> None:
        for observer in self._observers:
            observer.effects_run(effects, written=written)

    def store_written(self, seconds: float) -> None:
        for observer in self._observers:
            observer.store_written(seconds)


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
                stalls: LoopStalls | None = None) -> Metrics | None:
    """The metrics observer when ``[metrics]`` exports somewhere; None costs nothing at all."""
    if not (config.metrics.listen or config.metrics.textfile_path):
        return None
    return Metrics(vitals, clock, account=config.redis.account, reaper_decision=reaper_decision,
                   protection=protection, stalls=None if stalls is None else stalls.watch)


def _reaper_mode(config: Config) -> str:
    if not config.reaper.enabled:
        return "off"
    return "dry-run" if config.reaper.dry_run else "on"
