"""``binance/protocol/schedule.py``, the pure half of polling (no asyncio, no logging, no HTTP
client; ``binance/poller.py``, the shell, re-exports its names). The all-symbols orders sweep:
when it happens, what it costs, and that it yields to the positions poll (never the reverse)."""

from __future__ import annotations

import ast
import itertools
import math
from decimal import Decimal
from pathlib import Path

import pytest

from watchdog.binance import poller
from watchdog.binance.protocol import schedule as schedule_module
from watchdog.binance.protocol.budget import PRIORITY_RESERVE, Priority, WeightBudget
from watchdog.binance.protocol.schedule import (
    SWEEP_APART_S,
    PollSchedule,
    SweepList,
    orders_share_per_min,
    request_priority,
    request_wants_positions,
    sweep_hold_s,
)
from watchdog.binance.protocol.weights import (
    IP_WEIGHT_LIMIT_PER_MIN,
    SWEEP_LIST_WEIGHT,
    SWEEP_WEIGHT,
)
from watchdog.config import BinanceConfig, Config
from watchdog.core.events import OpenAlgoOrder, OrdersSnapshot, PositionAmount, PositionSnapshot
from watchdog.core.model import AlgoStatus, OrderId, PositionKey, PositionSide, Symbol
from watchdog.runtime.build import schedule_of


def snap(*rows: tuple[str, str]) -> PositionSnapshot:
    return PositionSnapshot(1, 0, 0, tuple(
        PositionAmount(PositionKey(Symbol(s), PositionSide.BOTH), Decimal(a), Decimal(1), 0)
        for s, a in rows))


def algo(symbol: str) -> OpenAlgoOrder:
    return OpenAlgoOrder(symbol=Symbol(symbol), algo_id=OrderId(7), client_algo_id="sl",
                         position_side=PositionSide.BOTH, side="SELL", order_type="STOP_MARKET",
                         status=AlgoStatus.NEW, reduce_only=False, close_position=True,
                         trigger_price=Decimal("1000"), quantity=Decimal(0), create_time_ms=1,
                         update_time_ms=1, actual_order_id=None)


def orders(symbols: frozenset[Symbol] | None, *rows: OpenAlgoOrder) -> OrdersSnapshot:
    return OrdersSnapshot(2, 0, (), tuple(rows), symbols)


def schedule() -> PollSchedule:
    return PollSchedule(poll_interval_s=1.0, orders_poll_interval_s=10.0,
                        fast_poll_interval_s=0.25, orders_sweep_interval_s=300.0)


def test_sweep_right_after_the_first_positions_answer_then_every_interval() -> None:
    s = schedule()
    assert not s.plan(0.0).sweep  # no positions answer yet: positions go first
    s.positions_started(0.0)
    s.positions_seen(snap(), 0.1)
    plan = s.plan(0.1)
    assert plan.sweep
    assert plan.sweep_list is SweepList.ALGO  # the algo list first (the incident's kind)
    assert not plan.read_positions
    s.sweep_started(0.1, SweepList.ALGO)
    assert not s.plan(0.2).sweep  # the regular list waits half an interval (150 s here)
    s.sweep_answered(0.2, SweepList.ALGO)
    s.positions_started(150.0)
    assert not s.plan(150.05).sweep
    plan = s.plan(150.1)
    assert plan.sweep_list is SweepList.REGULAR
    s.sweep_started(150.1, SweepList.REGULAR)
    s.sweep_answered(150.2, SweepList.REGULAR)
    s.positions_started(299.0)
    assert not s.plan(299.0).sweep
    # The sweep's due time is a wake-up of its own (positions are further away here).
    s.positions_started(300.0)
    assert s.plan(300.05).wake_in_s == pytest.approx(0.05)
    assert s.plan(300.1).sweep_list is SweepList.ALGO
    s.sweep_started(300.1, SweepList.ALGO)
    s.sweep_answered(300.2, SweepList.ALGO)
    s.positions_started(450.0)
    assert not s.plan(450.0).sweep  # each list every interval, offset by half
    assert s.plan(450.1).sweep_list is SweepList.REGULAR


def test_symbols_found_by_the_sweep_are_read_per_symbol_while_they_have_orders() -> None:
    s = schedule()
    s.positions_started(0.0)
    s.positions_seen(snap(), 0.0)
    s.sweep_started(0.0)  # both lists at once (the stream's read of a big account)
    s.orders_seen(orders(None, algo("ETHUSDT")))  # a stop on a flat, quiet symbol
    s.sweep_read(0.0, 0.1)
    assert s.plan(5.0).order_symbols == ()  # the sweep was this symbol's read too
    assert s.plan(10.0).order_symbols == ("ETHUSDT",)
    s.orders_read(Symbol("ETHUSDT"), 10.0)
    s.orders_seen(orders(frozenset({Symbol("ETHUSDT")})))  # gone: no longer watched
    assert Symbol("ETHUSDT") not in s.tracked(30.0, ())
    s.orders_seen(orders(None, algo("SOLUSDT")))
    assert s.tracked(31.0, ()) == {Symbol("SOLUSDT")}  # all symbols: the sweep is authoritative


def test_sweep_read_does_not_swallow_an_event_after_it_started() -> None:
    s = schedule()
    s.positions_started(0.0)
    s.positions_seen(snap(("BTCUSDT", "1")), 0.0)
    s.orders_read(Symbol("BTCUSDT"), 0.0)
    s.sweep_started(5.0)
    s.activity(Symbol("BTCUSDT"), 5.5)  # arrived while the sweep was in flight
    s.sweep_read(5.0, 6.0)
    assert s.plan(6.0).order_symbols == ("BTCUSDT",)


def test_sweep_yields_to_the_positions_poll_when_the_ip_is_tight() -> None:
    budget = WeightBudget(360)
    assert sweep_hold_s(budget, 0.0) == 0
    # The bot has pushed the IP close to the 90% line: one positions read (5) still fits, the
    # sweep of one list (40) on top of it does not, so the sweep waits and positions go on.
    line = int(IP_WEIGHT_LIMIT_PER_MIN * 0.9)
    budget.observe_used_weight(line - SWEEP_LIST_WEIGHT + 10, now_s=10.0)
    assert budget.wait_for_s(5, now_s=10.0) == 0
    assert sweep_hold_s(budget, 10.0) == pytest.approx(60.0)
    assert sweep_hold_s(budget, 70.0) == 0  # the report is a minute old: room again
    budget.block(5.0, now_s=80.0)  # Retry-After: nothing goes
    assert sweep_hold_s(budget, 81.0) == pytest.approx(4.0)


def test_weight_arithmetic_at_the_defaults_stays_within_our_share() -> None:
    cfg = BinanceConfig()
    share = IP_WEIGHT_LIMIT_PER_MIN * cfg.weight_budget_pct // 100
    assert share == 360
    positions_per_min = math.ceil(5 * 60 / cfg.poll_interval_s)
    sweep_per_min = math.ceil(SWEEP_WEIGHT * 60 / cfg.orders_sweep_interval_s)
    left = orders_share_per_min(share, cfg.poll_interval_s, cfg.orders_sweep_interval_s)
    assert (positions_per_min, sweep_per_min, PRIORITY_RESERVE, left) == (334, 8, 8, 10)
    assert positions_per_min + sweep_per_min + PRIORITY_RESERVE + left == share


def test_steady_state_weight_with_the_budget_module() -> None:
    """Eleven minutes at the defaults, decided as the poller decides (positions at the pace
    that leaves each list's sweep its room, a sweep when it fits, per-symbol reads of one open
    symbol within their share): no 60 s window ever holds more than 360 nor both lists'
    sweeps, the positions poll never stops (around a sweep it slows to about 1.0 s; with both
    lists at once it was 1.2 s), and a reap always finds room."""
    cfg = BinanceConfig()
    s = schedule_of(Config(binance=cfg))  # as the daemon builds it
    own = WeightBudget(360)
    orders_budget = WeightBudget(orders_share_per_min(360, cfg.poll_interval_s,
                                                      cfg.orders_sweep_interval_s), reserve=0)
    now_s = 0.0
    end_s = cfg.orders_sweep_interval_s * 1.5 + 60.0
    sweeps: list[tuple[float, SweepList]] = []
    last_positions_s = 0.0
    longest_gap_s = 0.0
    while now_s < end_s:
        plan = s.plan(now_s)
        if plan.read_positions:
            ahead = [(s.sweep_at(w), SWEEP_LIST_WEIGHT) for w in SweepList]
            pace = own.pace_s(5, now_s, [(at, w) for at, w in ahead if at > now_s])
            if (own.wait_for_s(5, now_s=now_s) == 0
                    and now_s >= s.last_positions_at + (0.0 if pace == math.inf else pace)):
                if last_positions_s:
                    longest_gap_s = max(longest_gap_s, now_s - last_positions_s)
                last_positions_s = now_s
                s.positions_started(now_s)
                s.positions_seen(snap(("BTCUSDT", "1")), now_s)
                own.record(5, now_s)
        plan = s.plan(now_s)
        if plan.sweep_list is not None and not plan.read_positions:
            if sweep_hold_s(own, now_s) == 0:
                s.sweep_started(now_s, plan.sweep_list)
                own.record(SWEEP_LIST_WEIGHT, now_s)
                s.sweep_answered(now_s, plan.sweep_list)
                sweeps.append((now_s, plan.sweep_list))
            else:
                s.defer_sweep(now_s + 30.0, plan.sweep_list)
        for symbol in s.plan(now_s).order_symbols:
            if (orders_budget.wait_for_s(2, now_s=now_s) > 0
                    or own.wait_for_s(2, now_s=now_s) > 0):
                break
            orders_budget.record(2, now_s)
            own.record(2, now_s)
            s.orders_read(symbol, now_s)
        assert own.own_used_1m(now_s) <= 360 - PRIORITY_RESERVE
        assert own.wait_for_s(PRIORITY_RESERVE, priority=Priority.SAFETY, now_s=now_s) == 0
        now_s = round(now_s + 0.05, 2)
    # Each list at startup (the algo list first, the regular one half an interval later) and
    # 600 s later: offset by half, never two in one 60 s window.
    assert [w for _, w in sweeps] == [SweepList.ALGO, SweepList.REGULAR] * 2
    assert all(b - a == pytest.approx(300.0, abs=1.0)
               for (a, _), (b, _) in itertools.pairwise(sweeps))
    assert longest_gap_s < 1.1, longest_gap_s


def test_a_position_rest_shows_closed_gets_its_orders_read_first() -> None:
    """With the stream blind, an order read is the only way to see the stop a bot places
    right after the close (the incident): it goes at once, as a priority read."""
    s = schedule()
    s.positions_started(0.0)
    s.positions_seen(snap(("BTCUSDT", "1"), ("ETHUSDT", "2")), 0.1)
    s.orders_read(Symbol("BTCUSDT"), 0.1)
    s.orders_read(Symbol("ETHUSDT"), 0.1)
    assert s.plan(0.2).order_symbols == ()
    s.positions_started(1.0)
    s.positions_seen(snap(("ETHUSDT", "2")), 1.1)  # BTCUSDT closed
    plan = s.plan(1.1)
    assert plan.orders_urgent == ("BTCUSDT",)
    assert plan.order_symbols == ("BTCUSDT",)
    s.orders_read(Symbol("BTCUSDT"), 1.2)
    assert s.plan(1.2).orders_urgent == ()


@pytest.mark.parametrize(("reason", "priority"), [
    ("reaper: confirm flat by REST", Priority.REQUESTED),  # a reap waits on it
    ("stream lost: blind: …", Priority.REQUESTED),         # post-gap
    ("REST ambiguous on BTCUSDT:BOTH", Priority.REQUESTED),
    ("malformed user-stream frame: not JSON", Priority.REQUESTED),
    ("margin call", Priority.REQUESTED),
    ("fill on BTCUSDT", Priority.ROUTINE),                 # the live stream already said it
])
def test_the_priority_of_a_requested_read(reason: str, priority: Priority) -> None:
    assert request_priority(reason) is priority


def test_the_guard_s_doubt_read_reads_orders_only() -> None:
    """core/guard.py rule 8 asks for an open symbol's *orders*: on main the schedule read
    positions too (a priority positionRisk, 5 weight, 0.25 s after the last poll) besides the
    2 it asked for; in a quiet minute with the stream muted that was 10 to 15 of the 19 weight the
    0.9 s poll leaves (docs/BENCHMARKS.md, "every weight unit of a minute")."""
    s = schedule()
    s.positions_started(0.0)
    s.positions_seen(snap(("BTCUSDT", "1")), 0.1)
    s.orders_read(Symbol("BTCUSDT"), 0.1)
    s.snapshot_requested("guard: orders of BTCUSDT last read 15000 ms ago",
                         frozenset({Symbol("BTCUSDT")}))
    plan = s.plan(0.4)  # past fast_poll_interval_s: a positions request would be read now
    assert not plan.read_positions
    assert not plan.positions_urgent
    assert plan.orders_urgent == ("BTCUSDT",)  # a priority orders read, at once
    assert plan.positions_wake_in_s == pytest.approx(0.6)  # the poll keeps its own time
    s.orders_read(Symbol("BTCUSDT"), 0.41)
    assert s.plan(0.42).orders_urgent == ()


@pytest.mark.parametrize(("reason", "symbols", "positions"), [
    ("guard: orders of BASUSDT last read 15000 ms ago", {"BASUSDT"}, False),
    ("guard: orders of BASUSDT last read never", {"BASUSDT"}, False),
    ("guard: orders of BASUSDT last read never", None, True),  # no symbol: read everything
    ("reaper: confirm flat by REST", {"BASUSDT"}, True),      # the reap's proof is positions
    ("fill on BASUSDT", {"BASUSDT"}, True),
    ("margin call", {"BASUSDT"}, True),
    ("stop trigger crossed on BASUSDT:BOTH", None, True),
])
def test_which_requests_want_a_positions_read(reason: str, symbols: set[str] | None,
                                              positions: bool) -> None:
    wanted = None if symbols is None else frozenset(Symbol(x) for x in symbols)
    assert request_wants_positions(reason, wanted) is positions


def test_the_guard_s_wording_is_the_one_the_schedule_keys_on() -> None:
    """The prefix above keys on the guard's wording (core/guard.py rule 8)."""
    import inspect

    from watchdog.core import guard

    assert 'reason=f"guard: orders of {symbol} last read' in inspect.getsource(guard)


def test_the_core_s_fill_request_is_the_routine_one() -> None:
    """The table above keys on the core's wording: a fill the stream reports asks this."""
    from watchdog.core.book import BookPolicy, PositionBook
    from watchdog.core.effects import RequestSnapshot
    from watchdog.core.events import StreamConnected, TradeLite

    book = PositionBook(BookPolicy(max_age_ms=5000, max_rest_lag_ms=2000))
    book.apply(StreamConnected(1), 1_000)
    effects = book.apply(TradeLite(event_time_ms=1_000, transaction_time_ms=1_000,
                                   symbol=Symbol("BTCUSDT"), order_id=OrderId(1),
                                   client_order_id="x", side="BUY",
                                   last_filled_quantity=Decimal(1),
                                   last_filled_price=Decimal(1)), 1_000)
    requests = [e for e in effects if isinstance(e, RequestSnapshot)]
    assert requests
    assert all(request_priority(r.reason) is Priority.ROUTINE for r in requests)


# ---------------------------------------------------------------- the module: pure, re-exported

_IO = {"asyncio", "httpx", "loguru", "time", "os", "socket", "websockets", "redis"}


def test_schedule_imports_nothing_that_does_io() -> None:
    tree = ast.parse(Path(schedule_module.__file__).read_text("utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & _IO


def test_poller_reexports_the_schedule() -> None:
    for name in ("PollSchedule", "PollPlan", "SWEEP_RETRY_S",
                 "orders_share_per_min", "sweep_hold_s"):
        assert getattr(poller, name) is getattr(schedule_module, name), name
        assert name in poller.__all__


def test_a_gap_s_read_waits_briefly_for_the_reconnect_s_own() -> None:
    """A blind reconnect is immediate and reads positions right after the connect: the read the
    core asks for because of the loss was a second one 13 ms earlier (5 weight, once a minute
    in `detection_steady`). It waits up to fast_poll_interval_s for the reconnect's read."""
    s = schedule()
    s.positions_started(0.5)
    s.stream_lost(1.0)
    s.snapshot_requested("stream lost: blind: BTCUSDT:BOTH: …", None)
    plan = s.plan(1.0)
    assert not plan.read_positions
    assert plan.wake_in_s == pytest.approx(0.25)
    s.positions_read_by_other(1.02)  # the reconnect's post-connect read serves it
    assert not s.plan(1.25).positions_urgent
    # No reconnect within the hold: read then, as before.
    s = schedule()
    s.positions_started(0.5)
    s.stream_lost(1.0)
    s.snapshot_requested("listen key expired", None)
    assert not s.plan(1.2).read_positions
    assert s.plan(1.25).read_positions


def test_a_gap_s_request_after_the_reconnect_s_read_is_served_by_it() -> None:
    """The core's request after a loss is carried out after its batch: at a blind promotion
    (loss, connect and the reconnect's read in one batch) it came after the reconnect's read
    had started and was read again 250 ms later (5 weight in the start's minute of
    `detection_e2e`, half the runs; docs/BENCHMARKS.md, session 7)."""
    s = schedule()
    s.positions_started(0.5)
    s.stream_lost(1.0)
    s.positions_read_by_other(1.001)  # the reconnect's post-connect read, requested after it
    s.snapshot_requested("stream lost: blind: BTCUSDT:BOTH: …", None)
    s.snapshot_requested("listen key expired", None)
    for at_s in (1.001, 1.26, 1.5):
        plan = s.plan(at_s)
        assert not plan.positions_urgent
        assert not plan.read_positions
    # A read started before the loss serves nothing: the request waits for the reconnect's.
    s = schedule()
    s.positions_started(0.99)
    s.stream_lost(1.0)
    s.snapshot_requested("stream lost: dropped", None)
    assert s.plan(1.0).positions_urgent
    assert s.plan(1.25).read_positions
    # Any other request right after that read still goes.
    s = schedule()
    s.stream_lost(1.0)
    s.positions_read_by_other(1.001)
    s.snapshot_requested("stop trigger crossed on BTCUSDT:BOTH", None)
    assert s.plan(1.3).read_positions


def test_only_a_gap_s_own_read_waits_for_the_reconnect() -> None:
    s = schedule()
    s.positions_started(0.5)
    s.stream_lost(1.0)
    s.snapshot_requested("stream lost: dropped", None)
    s.snapshot_requested("stop trigger crossed on BTCUSDT:BOTH", None)  # never held
    assert s.plan(1.0).read_positions


# ---------------------------------------------------------------- the two lists apart (rule 4)


def first_answer() -> PollSchedule:
    s = schedule()
    s.positions_started(0.0)
    s.positions_seen(snap(), 0.1)
    return s


def test_at_a_start_the_regular_list_waits_for_the_algo_list_even_while_it_is_held() -> None:
    """The algo list first (the incident's orphan kind): held for a slot or by the budget, its
    turn is not taken by the regular list, which would then push it later."""
    s = first_answer()
    assert s.plan(0.1).sweep_list is SweepList.ALGO
    s.defer_sweep(5.0, SweepList.ALGO)  # no room yet
    assert s.plan(1.0).sweep_list is None
    assert s.sweep_at(SweepList.REGULAR) == pytest.approx(5.0 + 150.0)  # half of 300 s
    assert s.plan(5.0).sweep_list is SweepList.ALGO
    s.sweep_started(5.0, SweepList.ALGO)
    s.sweep_answered(5.1, SweepList.ALGO)
    assert s.sweep_at(SweepList.REGULAR) == pytest.approx(5.0 + 150.0)


def test_with_a_short_interval_the_lists_stay_a_window_apart() -> None:
    s = PollSchedule(poll_interval_s=1.0, orders_poll_interval_s=10.0,
                     fast_poll_interval_s=0.25, orders_sweep_interval_s=60.0)  # the minimum
    s.positions_started(0.0)
    s.positions_seen(snap(), 0.1)
    s.sweep_started(0.1, SweepList.ALGO)
    s.sweep_answered(0.3, SweepList.ALGO)
    assert s.sweep_at(SweepList.REGULAR) == pytest.approx(0.3 + SWEEP_APART_S)


def test_a_list_s_sweep_waits_while_the_other_s_is_under_way_or_in_the_window() -> None:
    s = first_answer()
    s.sweep_started(0.1, SweepList.ALGO)
    assert s.sweep_at(SweepList.REGULAR) == math.inf  # under way: its answer is not in yet
    s.sweep_answered(2.0, SweepList.ALGO)
    assert s.sweep_at(SweepList.REGULAR) == pytest.approx(150.1)  # half the interval later
    s.sweep_started(150.1, SweepList.REGULAR)
    s.sweep_answered(150.2, SweepList.REGULAR)
    s.defer_sweep(250.0, SweepList.ALGO)  # its next try, say, comes early
    assert s.sweep_at(SweepList.ALGO) == 250.0
    s.defer_sweep(160.0, SweepList.ALGO)
    assert s.sweep_at(SweepList.ALGO) == pytest.approx(150.2 + SWEEP_APART_S)


def test_one_list_s_sweep_keeps_the_symbols_the_other_list_holds_orders_on_watched() -> None:
    """A sweep of the regular list lists no algo order: the symbol with an algo stop stays
    watched (read per symbol), as it did when one sweep read both lists."""
    s = first_answer()
    s.orders_seen(OrdersSnapshot(2, 0, (), (algo("ETHUSDT"),), None, covers_orders=False))
    assert Symbol("ETHUSDT") in s.tracked(1.0, ())
    s.orders_seen(OrdersSnapshot(3, 0, (), (), None, covers_algo=False))
    assert Symbol("ETHUSDT") in s.tracked(62.0, ())
    s.orders_seen(OrdersSnapshot(4, 0, (), (), None, covers_orders=False))
    assert Symbol("ETHUSDT") not in s.tracked(301.0, ())
