"""Prometheus metrics: an observer of what the daemon already produces, nothing more.

No adapter calls a metric. Three feeds, each an existing flow the daemon already has:

- the core loop's inbox events (``observe_event``, one more ``CoreLoop`` observer): reconnects;
- the core's effects as the ``EffectsRunner`` runs them (``effects_run``, ``store_written``):
  closure detection time, blind detections, alerts, Redis write latency;
- the events stream in Redis (``observe_stream_entry``, fed by ``serve.tail_events``): what
  bots and the reaper write there: unprotected windows (``lease``/``end`` entries) and
  ``protection_restored``.

Everything else (stream state, REST weight, positions and their ages, health, orphans removed,
the event loop's stalls and timer lateness kept by ``runtime/stalls.py``) is read at collection
time from ``Vitals``, the book and the stall watch. Collection runs on the event loop
(the HTTP endpoint and the textfile writer live on it), so it never races the core, and a hung
loop shows as a failed scrape (``up == 0``), not as frozen numbers.

Labels never carry a secret or a credential: symbols, sides, states, paths and alert codes only;
``build_info`` carries the version and the ``[redis] account`` namespace name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from watchdog.clock import Clock
from watchdog.core.effects import Effect, Notify, Publish, RaiseAlert
from watchdog.core.events import Event, StreamConnected
from watchdog.core.model import PositionKey, PositionState, PositionView
from watchdog.core.reaper import ReaperDecision, Why
from watchdog.runtime.stalls import LATENESS_BUCKETS, StallWatch
from watchdog.runtime.vitals import Vitals

__all__ = ["CLOSURE_PATHS", "PREFIX", "STREAM_STATES", "Metrics", "closure_detections",
           "unprotected_window_s"]

PREFIX = "position_watchdog_"
# How a closure became known: the user stream, a REST read, or (issue 13) a public price
# crossing a stop's trigger. All three are exported from the start so rates read 0, not absent.
CLOSURE_PATHS = ("stream", "rest", "trigger")
# Every state ``PositionBook.stream_state`` may report; a state not listed is exported too.
STREAM_STATES = ("live", "gap", "down", "unproven")
PROTECTION_STATES = ("covered", "partial", "none", "unknown")  # issue 17's ``protection`` field
_STREAM_BLIND = "stream_blind"
_PROTECTION_RESTORED = "protection_restored"

# Closure detection: the incident took ~68 s; the targets are 0.3 s (trigger) and 1 s (REST).
_DETECTION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Unprotected windows: 0 for a create-then-cancel move; the incident's cancel + create was 1.4 s.
_WINDOW_BUCKETS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)
# One pipelined Redis write of an effects batch: sub-millisecond on loopback, seconds when sick.
_REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def closure_detections(effects: Sequence[Effect], at_ms: int) -> list[tuple[str, float]]:
    """``(path, seconds)`` for every ``position_closed`` in ``effects``: from the exchange time of
    the closing fact (``as_of_time_ms`` of the same batch's Publish) to ``at_ms``, when the
    closed view reached Redis. PURE. A fact without exchange time is not timed."""
    views: dict[PositionKey, PositionView] = {}
    found: list[tuple[str, float]] = []
    for effect in effects:
        if isinstance(effect, Publish):
            views[effect.view.key] = effect.view
        elif isinstance(effect, Notify) and effect.kind == "position_closed" and effect.key:
            view = views.get(effect.key)
            if view is None or view.as_of_time_ms <= 0:
                continue
            found.append((str(view.source), max(0, at_ms - view.as_of_time_ms) / 1000))
    return found


def unprotected_window_s(fields: Mapping[str, str]) -> float | None:
    """The window a bot's ``end`` recorded (begin → end, seconds), from one events-stream entry;
    None for any other entry or an unknown window (``window_ms`` -1). PURE."""
    if fields.get("kind") != "lease" or fields.get("action") != "end":
        return None
    try:
        window_ms = int(fields.get("window_ms", ""))
    except ValueError:
        return None
    return window_ms / 1000 if window_ms >= 0 else None


class Metrics:
    """The daemon's registry and the observer methods that feed it (see the module docstring)."""

    def __init__(self, vitals: Vitals, clock: Clock, *, account: str,
                 reaper_decision: Callable[[], ReaperDecision | None] = lambda: None,
                 protection: Callable[[], Mapping[PositionKey, tuple[str, int | None]]]
                 = dict, stalls: StallWatch | None = None) -> None:
        self._vitals = vitals
        self._stalls = stalls or StallWatch()  # runtime/stalls.py: read at collection
        self._protection = protection  # the guard's answers (core/guard.py), issue 17
        self._reaper_decision = reaper_decision
        self._clock = clock
        self._account = account
        self._running = True
        self._connects = 0
        # ``*_created`` series (one more per counter and histogram) say nothing a scrape of a
        # restarted daemon does not: Prometheus handles counter resets. Process-wide switch.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        self.registry = CollectorRegistry()
        r = self.registry
        self.closure_detection = Histogram(
            PREFIX + "closure_detection_seconds",
            "Exchange time of a closing fact to its closed view written to Redis, by path",
            ["path"], buckets=_DETECTION_BUCKETS, registry=r)
        self.unprotected_window = Histogram(
            PREFIX + "unprotected_window_seconds",
            "Bots' unprotected windows (veto lease begin to end) recorded by end", [],
            buckets=_WINDOW_BUCKETS, registry=r)
        self.redis_publish = Histogram(
            PREFIX + "redis_publish_seconds",
            "One pipelined Redis write of an effects batch (positions, events, alerts)", [],
            buckets=_REDIS_BUCKETS, registry=r)
        self.stream_blind = Counter(
            PREFIX + "stream_blind", "Times REST showed a change the live user stream never reported",
            registry=r)
        self.reconnects = Counter(
            PREFIX + "stream_reconnects", "User-stream connections opened after the first one",
            registry=r)
        self.alerts = Counter(PREFIX + "alerts", "Alerts raised, by code", ["code"], registry=r)
        self.protections_restored = Counter(
            PREFIX + "protections_restored",
            "protection_restored events: a stop put back after a cancel raced a fill or open",
            registry=r)
        for path in CLOSURE_PATHS:
            self.closure_detection.labels(path=path)
        self.alerts.labels(code=_STREAM_BLIND)
        r.register(_Live(self))

    # ------------------------------------------------------------ feeds

    def observe_event(self, event: Event) -> None:
        """A ``CoreLoop`` observer: every inbox event, before the core applies it."""
        if isinstance(event, StreamConnected):
            self._connects += 1
            if self._connects > 1:
                self.reconnects.inc()

    def effects_run(self, effects: Sequence[Effect], *, written: bool) -> None:
        """The EffectsRunner ran ``effects``; ``written``: their store writes reached Redis now
        (not deferred by an outage). Closures are timed only when written: that is when bots see them."""
        for effect in effects:
            if isinstance(effect, RaiseAlert):
                self.alerts.labels(code=effect.code).inc()
                if effect.code == _STREAM_BLIND:
                    self.stream_blind.inc()
        if written:
            for path, seconds in closure_detections(effects, self._clock.wall_ms()):
                self.closure_detection.labels(path=path).observe(seconds)

    def store_written(self, seconds: float) -> None:
        """How long one pipelined write of an effects batch took."""
        self.redis_publish.observe(seconds)

    def observe_stream_entry(self, fields: Mapping[str, str]) -> None:
        """One entry of the events stream (bots' ``end``, the reaper's events, ours)."""
        window = unprotected_window_s(fields)
        if window is not None:
            self.unprotected_window.observe(window)
        elif fields.get("kind") == _PROTECTION_RESTORED:
            self.protections_restored.inc()

    def stopped(self) -> None:
        """The daemon is stopping: ``running`` reads 0 in the last textfile written."""
        self._running = False

    # ------------------------------------------------------------ read at collection

    def live(self) -> Iterator[Metric]:
        """The gauges and counters read from the daemon's state now."""
        now_ms = self._clock.wall_ms()
        vitals = self._vitals
        health = vitals.health(now_ms)
        yield _gauge("build_info", "Version and [redis] account of this watchdog", 1,
                     version=health.version, account=self._account)
        yield _gauge("running", "1 while the daemon runs (0 in the last textfile of a stop)",
                     int(self._running))
        yield _gauge("ready", "1 once the first snapshot and heartbeat are published", int(health.ready))
        yield _gauge("healthy", "1 when the heartbeat lists no problem", int(health.healthy))
        yield _gauge("last_refresh_timestamp_seconds", "When these metrics were collected",
                     now_ms / 1000)
        yield _gauge("start_timestamp_seconds", "When the daemon started", health.started_ms / 1000)
        states = GaugeMetricFamily(PREFIX + "stream_state",
                                   "User-stream state: 1 for the current one", labels=["state"])
        current = str(health.stream_state)
        for state in (*STREAM_STATES, *(() if current in STREAM_STATES else (current,))):
            states.add_metric([state], 1 if state == current else 0)
        yield states
        yield _gauge("rest_weight_used_1m", "REST weight the watchdog used over the last minute",
                     health.rest_weight_used_1m)
        yield _gauge("rest_weight_budget_1m", "The watchdog's REST weight budget per minute",
                     health.rest_weight_budget_1m)
        yield _gauge("rest_ip_weight_used_1m", "The IP's REST weight over the last minute "
                     "(X-MBX-USED-WEIGHT-1M, the bot's included)", health.rest_ip_weight_1m)
        yield _gauge("rest_consecutive_failures", "REST position reads failed in a row",
                     vitals.snapshot_failures)
        yield _gauge("redis_writable", "0 while Redis writes fail (effects deferred)",
                     0 if vitals.store_error else 1)
        yield CounterMetricFamily(PREFIX + "orphans_removed",
                                  "Orphaned stop orders the reaper removed", value=health.orphans_removed)
        yield from _loop_lateness(self._stalls)
        yield from _positions(vitals.book.views(), now_ms, self._protection())
        decision = self._reaper_decision()
        if decision is not None:
            verdicts = GaugeMetricFamily(
                PREFIX + "reaper_orders",
                "Open orders by the reaper's last verdict (orphan: selected for removal)",
                labels=["verdict"])
            for why in Why:
                verdicts.add_metric([why.value], sum(1 for a in decision.assessments if a.why is why))
            yield verdicts


class _Live(Collector):
    """Hands the registry what ``Metrics.live`` reads at collection time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.live()


def _gauge(name: str, documentation: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(PREFIX + name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _loop_lateness(watch: StallWatch) -> Iterator[Metric]:
    """runtime/stalls.py rule 3: stalls, the worst lateness, every watched wake's lateness."""
    yield CounterMetricFamily(PREFIX + "loop_stalls",
                              "Event-loop stalls: a timer woke at least the stall threshold late",
                              value=watch.stalls)
    yield _gauge("loop_lateness_max_seconds",
                 "The worst lateness of a timer wake of the event loop since the start",
                 watch.worst_s)
    cumulative, buckets = 0, []
    for bound, count in zip((*LATENESS_BUCKETS, float("inf")), watch.counts, strict=True):
        cumulative += count
        buckets.append((_bound(bound), cumulative))
    yield HistogramMetricFamily(PREFIX + "loop_lateness_seconds",
                                "How late the event loop woke its timers (heartbeat, lead, "
                                "poller, ticker) against when they asked",
                                buckets=buckets, sum_value=watch.late_sum_s)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _positions(views: Sequence[PositionView], now_ms: int,
               answers: Mapping[PositionKey, tuple[str, int | None]] | None = None,
               ) -> Iterator[Metric]:
    counts = GaugeMetricFamily(PREFIX + "positions", "Published positions by state",
                               labels=["state"])
    for state in PositionState:
        counts.add_metric([state.value], sum(1 for view in views if view.state is state))
    yield counts
    ages = GaugeMetricFamily(PREFIX + "position_age_seconds",
                             "Time since the published state was last verified on the exchange",
                             labels=["symbol", "side", "state"])
    protection = GaugeMetricFamily(PREFIX + "position_protection",
                                   "Open positions: 1 for the current protection state",
                                   labels=["symbol", "side", "protection"])
    unprotected = GaugeMetricFamily(PREFIX + "position_unprotected_seconds",
                                    "Open positions without a covering stop: for how long",
                                    labels=["symbol", "side"])
    exposure = GaugeMetricFamily(PREFIX + "position_unprotected_exposure",
                                 "Open positions without cover: seconds x notional (|amount| x "
                                 "entry price, quote asset) of the current unprotected run",
                                 labels=["symbol", "side"])
    for view in views:
        labels = [str(view.key.symbol), view.key.side.value]
        if view.verified_ms > 0:
            ages.add_metric([*labels, view.state.value], max(0, now_ms - view.verified_ms) / 1000)
        # Issue 17: the guard's answer (``protection`` covered | partial | none | unknown and
        # ``unprotected_since_ms``), or the same names on the view when it carries them.
        answer = (answers or {}).get(view.key)
        shown = answer[0] if answer is not None else getattr(view, "protection", None)
        if view.state is not PositionState.OPEN or shown is None:
            continue
        for option in (*PROTECTION_STATES, *(() if str(shown) in PROTECTION_STATES else (str(shown),))):
            protection.add_metric([*labels, option], 1 if option == str(shown) else 0)
        since_ms = (answer[1] if answer is not None
                    else getattr(view, "unprotected_since_ms", 0)) or 0
        if since_ms > 0:
            seconds = max(0, now_ms - since_ms) / 1000
            unprotected.add_metric(labels, seconds)
            exposure.add_metric(labels, seconds * float(abs(view.amount) * view.entry_price))
    yield ages
    yield protection
    yield unprotected
    yield exposure
