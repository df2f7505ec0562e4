"""poller.py rules 5 and 6 (issue 13 item 2), on the pure ``PollSchedule`` with an injected
clock: the routine positions poll slows to ``idle_poll_interval_s`` only while calm, every sign
of doubt brings it back at once, and a due sweep waits for a trusted stream for at most one
interval. Each test tries to make the poll slow (or the sweep go) when it must not."""

from __future__ import annotations

from decimal import Decimal

import pytest

from watchdog.binance.protocol.schedule import CALM_AFTER_S, PollSchedule, SweepList
from watchdog.core.events import PositionAmount, PositionSnapshot
from watchdog.core.model import PositionKey, PositionSide, Symbol

BTC = Symbol("BTCUSDT")
POLL_S, IDLE_S = 0.9, 2.0


def schedule(**kw: float) -> PollSchedule:
    return PollSchedule(poll_interval_s=POLL_S, orders_poll_interval_s=5.0,
                        fast_poll_interval_s=0.25, idle_poll_interval_s=kw.get("idle", IDLE_S),
                        orders_sweep_interval_s=600.0)


def snapshot(amount: str, request_id: int = 1) -> PositionSnapshot:
    rows = (PositionAmount(PositionKey(BTC, PositionSide.BOTH), Decimal(amount), Decimal("100"), 1),)
    return PositionSnapshot(request_id, 0, 0, rows)


def known(s: PollSchedule, now_s: float = 0.0) -> PollSchedule:
    """One complete positions answer seen (calm needs one), then a read started at ``now_s``."""
    s.positions_seen(snapshot("1"), now_s)
    s.positions_started(now_s)
    return s


def calm(s: PollSchedule, now_s: float, trusted: bool = True, far: bool = True) -> bool:
    return s.calm(now_s, stream_trusted=trusted, stops_far=far)


def test_calm_after_the_quiet_period_slows_the_routine_read_to_the_idle_interval() -> None:
    s = known(schedule(), now_s=100.0)
    assert calm(s, 100.0 + CALM_AFTER_S)  # the positions answer at 0 is > CALM_AFTER_S old
    at = 100.0 + 1.0
    assert s.plan(at, calm=False).read_positions  # due at 100.9 without calm
    assert not s.plan(at, calm=True).read_positions  # calm: due at 102.0
    assert s.plan(100.0 + IDLE_S, calm=True).read_positions
    assert s.plan(at, calm=True).wake_in_s == pytest.approx(IDLE_S - 1.0)


@pytest.mark.parametrize(("trusted", "far"), [(False, True), (True, False), (False, False)],
                         ids=["stream-untrusted", "stop-near", "both"])
def test_an_untrusted_stream_or_a_stop_near_its_trigger_keeps_the_poll_fast(
        trusted: bool, far: bool) -> None:
    s = known(schedule(), now_s=100.0)
    assert not calm(s, 200.0, trusted=trusted, far=far)


@pytest.mark.parametrize("sign", ["doubt", "gap", "activity", "requested", "position-changed"])
def test_every_sign_of_doubt_keeps_the_poll_fast_for_calm_after_s(sign: str) -> None:
    s = known(schedule(), now_s=0.0)
    at = 50.0
    assert calm(s, at)
    if sign == "doubt":
        s.doubt(at)
    elif sign == "gap":
        s.doubt(at, gap=True)
    elif sign == "activity":
        s.activity(BTC, at)
    elif sign == "requested":
        s.snapshot_requested("stream gap", None)
        assert not calm(s, at)  # pending: never calm
        s.positions_started(at)
    else:
        s.positions_seen(snapshot("0", request_id=2), at)  # the position closed
    assert not calm(s, at + CALM_AFTER_S - 0.01)
    assert calm(s, at + CALM_AFTER_S)


def test_a_pending_routine_request_is_not_calm_either() -> None:
    s = known(schedule(), now_s=0.0)
    s.snapshot_requested("fill on BTCUSDT", [BTC])
    assert not calm(s, 100.0)


def test_doubt_pulls_the_next_read_back_to_poll_interval_after_the_last() -> None:
    s = known(schedule(), now_s=100.0)
    assert not s.plan(101.0, calm=True).read_positions
    # The calm read was due at 102.0; once not calm it is due at 100.9: at once.
    assert s.plan(101.0, calm=False).read_positions


def test_before_any_positions_answer_it_is_never_calm() -> None:
    s = schedule()
    assert not calm(s, 1000.0)


def test_an_idle_interval_below_poll_interval_is_poll_interval() -> None:
    s = known(schedule(idle=0.5), now_s=100.0)
    assert s.idle_poll_interval_s == POLL_S
    assert s.plan(100.0 + POLL_S, calm=True).read_positions


def test_a_budget_deferral_still_holds_while_calm() -> None:
    s = known(schedule(), now_s=100.0)
    s.defer_positions(105.0)
    assert not s.plan(104.0, calm=True).read_positions
    assert s.plan(105.0, calm=True).read_positions


# ---------------------------------------------------------------- rule 6: the sweep


def test_without_a_probe_the_sweep_goes_at_once_as_before() -> None:
    s = schedule()
    assert s.sweep_may_go(0.0, None)


def after_first_sweep() -> PollSchedule:
    s = schedule()
    s.sweep_started(0.0)
    return s


def test_the_first_sweep_after_a_start_or_a_take_over_is_never_held() -> None:
    """It finds what was left while no watchdog ran (chaos: daemon_kill9_mid_reap)."""
    s = schedule()
    s.doubt(0.0, gap=True)
    assert s.sweep_may_go(0.0, False)
    s.sweep_started(0.0)
    assert not s.sweep_may_go(600.0, False)
    s.sweep_soon(700.0)  # took the lead
    assert s.next_sweep_at == 700.0
    assert s.sweep_may_go(700.0, False)


def test_an_untrusted_stream_holds_the_sweep_for_at_most_one_interval() -> None:
    s = after_first_sweep()
    assert not s.sweep_may_go(610.0, False)
    assert s.sweep_forced_at(SweepList.ALGO) == 1210.0
    assert not s.sweep_may_go(1209.9, False)
    assert s.sweep_may_go(1210.0, False)
    s.sweep_started(1210.0)
    assert s.sweep_forced_at(SweepList.ALGO) is None  # the next sweep waits afresh


def test_a_trusted_stream_lets_the_sweep_go_calm_after_s_after_its_last_gap() -> None:
    s = after_first_sweep()
    s.doubt(5.0, gap=True)  # a reconnect
    assert not s.sweep_may_go(5.0 + CALM_AFTER_S - 0.01, True)
    assert s.sweep_may_go(5.0 + CALM_AFTER_S, True)


def test_activity_does_not_hold_the_sweep() -> None:
    s = after_first_sweep()
    s.activity(BTC, 50.0)
    assert s.sweep_may_go(50.0, True)
