"""Metrics: what each feed turns into, Prometheus naming, and nothing secret in the exposition
(docs/RULES.md rule 4).

The book is the real ``PositionBook`` fed real events; only the clock is injected."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.store import make_view, position_key
from watchdog.clock import ManualClock
from watchdog.core.book import PositionBook
from watchdog.core.effects import Notify, Publish, RaiseAlert
from watchdog.core.events import (
    PositionAmount,
    PositionSnapshot,
    SnapshotRequested,
    StreamConnected,
    StreamLost,
)
from watchdog.core.model import PositionState, Source
from watchdog.core.reaper import Assessment, ReaperDecision, Why
from watchdog.runtime.metrics import (
    CLOSURE_PATHS,
    PREFIX,
    STREAM_STATES,
    Metrics,
    closure_detections,
    unprotected_window_s,
)
from watchdog.runtime.vitals import Identity, Vitals

NOW_MS = 1_796_000_000_000
KEY = position_key("BASUSDT")


def make_metrics(book: PositionBook | None = None, clock: ManualClock | None = None,
                 ) -> tuple[Metrics, Vitals, ManualClock]:
    clock = clock or ManualClock(now_ms=NOW_MS)
    vitals = Vitals(Identity(42, "host", "9.9.9", NOW_MS - 60_000), book or PositionBook(),
                    weight_budget_1m=360, progress_limit_s=10)
    vitals.weight_used = lambda: 333
    vitals.ip_weight_used = lambda: 700
    vitals.orphans_removed = lambda: 2
    return Metrics(vitals, clock, account="main"), vitals, clock


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed back as Prometheus would."""
    text = generate_latest(metrics.registry).decode()
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(PREFIX + name, tuple(sorted(labels.items())))]


# ---------------------------------------------------------------- pure parts

def test_closure_detection_is_exchange_time_of_the_closing_fact_to_the_write() -> None:
    closed = replace(make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS),
                     as_of_time_ms=NOW_MS - 650, source=Source.REST)
    effects = [Publish(closed), Notify("position_closed", KEY)]
    assert closure_detections(effects, NOW_MS) == [("rest", 0.65)]


@pytest.mark.parametrize("effects", [
    [Notify("position_closed", KEY)],  # no view in the batch: nothing to time against
    [Publish(replace(make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS), as_of_time_ms=0)),
     Notify("position_closed", KEY)],  # no exchange time
    [Publish(make_view(KEY, verified_ms=NOW_MS)), Notify("position_opened", KEY)],
])
def test_closure_detection_times_only_closures_with_an_exchange_time(effects: list[object]) -> None:
    assert closure_detections(effects, NOW_MS) == []  # type: ignore[arg-type]


def test_closure_detection_never_negative_when_the_exchange_clock_is_ahead() -> None:
    closed = replace(make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS),
                     as_of_time_ms=NOW_MS + 40)
    assert closure_detections([Publish(closed), Notify("position_closed", KEY)], NOW_MS) == [
        ("stream", 0.0)]


@given(as_of=st.integers(min_value=-10, max_value=NOW_MS + 10_000),
       other=st.sampled_from(["position_opened", "stream_blind", "position_closed"]))
def test_closure_detection_never_negative_and_only_for_closures(as_of: int, other: str) -> None:
    view = replace(make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS), as_of_time_ms=as_of)
    found = closure_detections([Publish(view), Notify(other, KEY)], NOW_MS)
    if other != "position_closed" or as_of <= 0:
        assert found == []
    else:
        assert found == [("stream", max(0, NOW_MS - as_of) / 1000)]
        assert found[0][1] >= 0


@pytest.mark.parametrize(("fields", "expected"), [
    ({"kind": "lease", "action": "end", "window_ms": "1400"}, 1.4),
    ({"kind": "lease", "action": "end", "window_ms": "0"}, 0.0),
    ({"kind": "lease", "action": "end", "window_ms": "-1"}, None),
    ({"kind": "lease", "action": "end", "reason": "lease_lost"}, None),
    ({"kind": "lease", "action": "begin", "window_ms": "5"}, None),
    ({"kind": "position_closed"}, None),
])
def test_unprotected_window_from_end_entries_only(fields: dict[str, str], expected: float | None) -> None:
    assert unprotected_window_s(fields) == expected


# ---------------------------------------------------------------- the observer

def test_every_name_follows_prometheus_naming() -> None:
    metrics, _, _ = make_metrics()
    text = generate_latest(metrics.registry).decode()
    families = list(text_string_to_metric_families(text))
    assert families
    for family in families:
        assert family.name.startswith(PREFIX), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_closures_are_timed_by_path_only_when_written() -> None:
    metrics, _, _ = make_metrics()
    closed = replace(make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS),
                     as_of_time_ms=NOW_MS - 300)
    effects = [Publish(closed), Notify("position_closed", KEY)]
    metrics.effects_run(effects, written=False)  # deferred by a Redis outage: bots did not see it
    assert value(metrics, "closure_detection_seconds_count", path="stream") == 0
    metrics.effects_run(effects, written=True)
    assert value(metrics, "closure_detection_seconds_count", path="stream") == 1
    assert value(metrics, "closure_detection_seconds_sum", path="stream") == pytest.approx(0.3)
    assert value(metrics, "closure_detection_seconds_bucket", path="stream", le="0.3") == 1
    for path in CLOSURE_PATHS:  # present from the start, so rate() reads 0 instead of nothing
        assert value(metrics, "closure_detection_seconds_count", path=path) >= 0


def test_blind_detections_and_alerts_are_counted_even_with_redis_down() -> None:
    metrics, _, _ = make_metrics()
    assert value(metrics, "stream_blind_total") == 0
    metrics.effects_run([RaiseAlert("stream_blind", "REST shows a change", KEY),
                         RaiseAlert("margin_call", "margin call")], written=False)
    assert value(metrics, "stream_blind_total") == 1
    assert value(metrics, "alerts_total", code="stream_blind") == 1
    assert value(metrics, "alerts_total", code="margin_call") == 1


def test_reconnects_count_connections_after_the_first() -> None:
    metrics, _, _ = make_metrics()
    metrics.observe_event(StreamConnected(1))
    assert value(metrics, "stream_reconnects_total") == 0
    metrics.observe_event(StreamLost(1, "silence"))
    metrics.observe_event(StreamConnected(2))
    assert value(metrics, "stream_reconnects_total") == 1


def test_windows_and_restored_protections_come_from_the_events_stream() -> None:
    metrics, _, _ = make_metrics()
    metrics.observe_stream_entry({"kind": "lease", "action": "end", "window_ms": "1400"})
    metrics.observe_stream_entry({"kind": "lease", "action": "end", "window_ms": "0"})
    metrics.observe_stream_entry({"kind": "protection_restored", "position": "BASUSDT:BOTH"})
    assert value(metrics, "unprotected_window_seconds_count") == 2
    assert value(metrics, "unprotected_window_seconds_bucket", le="0.0") == 1
    assert value(metrics, "unprotected_window_seconds_bucket", le="1.0") == 1
    assert value(metrics, "unprotected_window_seconds_sum") == pytest.approx(1.4)
    assert value(metrics, "protections_restored_total") == 1


def test_redis_publish_latency_histogram() -> None:
    metrics, _, _ = make_metrics()
    metrics.store_written(0.0007)
    assert value(metrics, "redis_publish_seconds_count") == 1
    assert value(metrics, "redis_publish_seconds_bucket", le="0.001") == 1


def test_state_read_at_collection_time() -> None:
    book = PositionBook()
    metrics, vitals, clock = make_metrics(book)
    # Startup: not connected → down; every known state exported, exactly one at 1.
    assert value(metrics, "stream_state", state="down") == 1
    assert sum(value(metrics, "stream_state", state=s) for s in STREAM_STATES) == 1
    book.apply(StreamConnected(1), NOW_MS)
    book.apply(SnapshotRequested(1, NOW_MS), NOW_MS)
    book.apply(PositionSnapshot(1, NOW_MS, NOW_MS + 5, (
        PositionAmount(KEY, Decimal("1216"), Decimal("0.5"), NOW_MS - 10),)), NOW_MS + 5)
    clock.advance(1.505)
    assert value(metrics, "stream_state", state="live") == 1
    assert value(metrics, "stream_state", state="down") == 0
    assert value(metrics, "positions", state="open") == 1
    assert value(metrics, "positions", state="unknown") == 0
    assert value(metrics, "position_age_seconds", symbol="BASUSDT", side="BOTH",
                 state="open") == pytest.approx(1.5)
    assert value(metrics, "rest_weight_used_1m") == 333
    assert value(metrics, "rest_weight_budget_1m") == 360
    assert value(metrics, "rest_ip_weight_used_1m") == 700
    assert value(metrics, "orphans_removed_total") == 2
    assert value(metrics, "build_info", version="9.9.9", account="main") == 1
    assert value(metrics, "last_refresh_timestamp_seconds") == pytest.approx((NOW_MS + 1_505) / 1000)
    assert value(metrics, "redis_writable") == 1
    vitals.store_result("redis down")
    assert value(metrics, "redis_writable") == 0
    assert value(metrics, "running") == 1
    metrics.stopped()
    assert value(metrics, "running") == 0


def test_a_state_the_book_adds_later_is_exported_too() -> None:
    class Book(PositionBook):
        @property
        def stream_state(self) -> str:  # type: ignore[override]
            return "probing"

    metrics, _, _ = make_metrics(Book())
    assert value(metrics, "stream_state", state="probing") == 1
    assert value(metrics, "stream_state", state="unproven") == 0


def test_protection_gauges_follow_the_views_protection_field_once_it_exists() -> None:
    """Issue 17 adds ``protection`` to the view; the gauges read it when present, else stay empty."""
    metrics, vitals, _ = make_metrics()
    open_view = make_view(KEY, verified_ms=NOW_MS)
    vitals.book.views = lambda: [open_view]  # type: ignore[method-assign]
    assert not [k for k in samples(metrics) if k[0] == PREFIX + "position_protection"]

    class Protected:
        def __init__(self, protection: str, since_ms: int) -> None:
            self.protection, self.unprotected_since_ms = protection, since_ms

        def __getattr__(self, name: str) -> object:
            return getattr(open_view, name)

    vitals.book.views = lambda: [Protected("none", NOW_MS - 4_000)]  # type: ignore[method-assign,list-item]
    assert value(metrics, "position_protection", symbol="BASUSDT", side="BOTH", protection="none") == 1
    assert value(metrics, "position_protection", symbol="BASUSDT", side="BOTH",
                 protection="covered") == 0
    assert value(metrics, "position_unprotected_seconds", symbol="BASUSDT", side="BOTH") == 4.0



def test_reaper_verdicts_count_the_orphans_present() -> None:
    decision = ReaperDecision(NOW_MS, (), tuple(
        Assessment(object(), why, "") for why in (Why.ORPHAN, Why.ORPHAN, Why.POSITION_OPEN)),  # type: ignore[arg-type]
        (), ())
    clock = ManualClock(now_ms=NOW_MS)
    vitals = Vitals(Identity(1, "h", "1", 0), PositionBook(), weight_budget_1m=360, progress_limit_s=10)
    assert not [k for k in samples(Metrics(vitals, clock, account="a")) if "reaper" in k[0]]
    metrics = Metrics(vitals, clock, account="a", reaper_decision=lambda: decision)
    assert value(metrics, "reaper_orders", verdict="orphan") == 2
    assert value(metrics, "reaper_orders", verdict="position_open") == 1
    assert value(metrics, "reaper_orders", verdict="budget_exhausted") == 0


def test_protection_gauges_read_the_guards_answers() -> None:
    """Issue 17 as built: the guard's answers (core/guard.py ``answers``) feed the gauges."""
    _, vitals, clock = make_metrics()
    open_view = make_view(KEY, verified_ms=NOW_MS)
    vitals.book.views = lambda: [open_view]  # type: ignore[method-assign]
    metrics = Metrics(vitals, clock, account="main",
                      protection=lambda: {KEY: ("partial", NOW_MS - 2_500)})
    assert value(metrics, "position_protection", symbol="BASUSDT", side="BOTH",
                 protection="partial") == 1
    assert value(metrics, "position_unprotected_seconds", symbol="BASUSDT", side="BOTH") == 2.5
    notional = float(abs(open_view.amount) * open_view.entry_price)
    assert value(metrics, "position_unprotected_exposure", symbol="BASUSDT",
                 side="BOTH") == 2.5 * notional
