"""Vitals: degraded reasons from events and effects; the keepalive gate on loop progress."""

from __future__ import annotations

from decimal import Decimal

from watchdog.core.effects import Publish, Retract
from watchdog.core.events import PositionSnapshot, SnapshotFailed, StreamConnected, StreamLost, Tick
from watchdog.core.model import (
    Knowledge,
    PositionKey,
    PositionSide,
    PositionState,
    PositionView,
    Source,
    Symbol,
)
from watchdog.runtime.health import StreamState
from watchdog.runtime.vitals import Identity, Vitals

KEY = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)


def vitals() -> Vitals:
    return Vitals(Identity(pid=1, host="h", version="0", started_ms=1), weight_budget_pct=15,
                  progress_limit_s=10.0, weight_used=lambda: 42)


def view(state: PositionState) -> PositionView:
    return PositionView(KEY, state, Knowledge.CONFIRMED, Decimal(1216), Decimal("0.00832684"),
                        Source.STREAM, 1, 2, 3)


def test_healthy_once_ready_live_and_reads_succeed() -> None:
    v = vitals()
    assert "starting: first snapshot not published yet" in v.problems()
    v.observe_event(StreamConnected(1), now_ms=100)
    v.observe_event(PositionSnapshot(1, 90, 95, ()), now_ms=200)
    v.observe_effects([Publish(view(PositionState.OPEN))])
    v.ready = True
    health = v.health(now_ms=300)
    assert health.healthy, health.problems
    assert health.stream_state == StreamState.LIVE
    assert (health.last_snapshot_ms, health.positions_open) == (200, 1)
    assert (health.rest_weight_used_1m, health.rest_weight_budget_1m) == (42, 360)


def test_degraded_reasons() -> None:
    v = vitals()
    v.ready = True
    v.observe_event(StreamLost(1, "muted"), now_ms=1)
    v.observe_event(SnapshotFailed(2, "HTTP 503"), now_ms=2)
    v.observe_effects([Retract(KEY, "stale")])
    v.store_result("StoreUnavailable: timeout")
    problems = v.problems()
    assert problems == ("stream lost", "REST reads failing (1 in a row: HTTP 503)",
                        "redis writes failing: StoreUnavailable: timeout", "1 position(s) unknown")
    assert not v.health(3).healthy
    assert v.health(3).positions_unknown == 1


def test_ticks_are_not_stream_facts() -> None:
    v = vitals()
    v.observe_event(Tick(), now_ms=5)
    assert v.last_event_ms == 0


def test_keepalive_needs_progress_from_every_loop() -> None:
    v = vitals()
    assert not v.keepalive_due(100.0, ("poller", "heartbeat"))
    v.progressed("poller", 95.0)
    v.progressed("heartbeat", 99.0)
    assert v.keepalive_due(100.0, ("poller", "heartbeat"))
    assert not v.keepalive_due(106.0, ("poller", "heartbeat"))
