"""The sweep reads the algo list and the regular list apart (issue 13 item 2): each
half is authoritative for its own list only (core/orders.py rules 6 and 7), and every module
that judges an orders read honours that (the reaper, the guard, the stream proof, order
blindness). docs/RULES.md rule 1. Red team: each test here but the per-symbol one (which
guards against holding an orphan too long) failed while a sweep of one list was taken for
both (``lists_of`` answering both lists, ``lists_read`` always True)."""

from __future__ import annotations

from tests.core.reaper_support import (
    BAS,
    KEY,
    StubPositions,
    algo_row,
    algo_update,
    order_row,
    order_update,
    view,
)
from tests.core.test_guard import AMT, T0, Positions, no_leases
from watchdog.config import ReaperConfig
from watchdog.core.effects import Effect, Notify, PublishProtection, RaiseAlert
from watchdog.core.events import (
    OpenAlgoOrder,
    OpenOrder,
    OrdersSnapshot,
    SnapshotRequested,
    StreamConnected,
)
from watchdog.core.guard import Guard, GuardPolicy
from watchdog.core.model import AlgoStatus
from watchdog.core.order_blindness import OrderBlindness
from watchdog.core.orders import OrderBook
from watchdog.core.proof import StreamProof
from watchdog.core.reaper import Why, decide

POLICY = ReaperConfig().policy(max_rest_lag_ms=0)


def algo_sweep(*rows: OpenAlgoOrder, at_ms: int, request_id: int = 1) -> OrdersSnapshot:
    """The sweep's algo half: every symbol's algo orders, the regular list not read."""
    return OrdersSnapshot(request_id, at_ms, (), rows, None, covers_orders=False)


def regular_sweep(*rows: OpenOrder, at_ms: int, request_id: int = 2) -> OrdersSnapshot:
    """The sweep's regular half: every symbol's regular orders, the algo list not read."""
    return OrdersSnapshot(request_id, at_ms, rows, (), None, covers_algo=False)


# ---------------------------------------------------------------- the order book (rule 6)


def test_a_sweep_of_the_regular_list_never_takes_an_algo_stop_for_gone() -> None:
    book = OrderBook()
    book.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_000))
    book.apply(regular_sweep(at_ms=10_000))  # long after: it would have listed the algo if read
    assert book.get(9, is_algo=True) is not None  # type: ignore[arg-type]
    book.apply(algo_sweep(at_ms=20_000))  # the algo list without it: gone
    assert book.get(9, is_algo=True) is None  # type: ignore[arg-type]


def test_a_sweep_of_the_algo_list_never_takes_a_regular_order_for_gone() -> None:
    book = OrderBook()
    book.apply(order_update(8, "NEW", at_ms=1_000))
    book.apply(algo_sweep(at_ms=10_000))
    assert book.get(8, is_algo=False) is not None  # type: ignore[arg-type]
    book.apply(regular_sweep(at_ms=20_000))
    assert book.get(8, is_algo=False) is None  # type: ignore[arg-type]


def test_a_tombstone_is_retired_only_by_a_read_of_its_own_list() -> None:
    book = OrderBook()
    book.apply(algo_update(9, AlgoStatus.CANCELED, at_ms=1_000))
    book.apply(regular_sweep(at_ms=10_000))
    assert book.is_gone(9, is_algo=True)  # type: ignore[arg-type]
    book.apply(algo_sweep(at_ms=20_000))
    assert not book.is_gone(9, is_algo=True)  # type: ignore[arg-type]


def test_both_lists_of_a_symbol_are_read_by_a_read_of_each_or_by_one_per_symbol_read() -> None:
    book = OrderBook()
    assert not book.lists_read(BAS)
    book.apply(algo_sweep(at_ms=1_000))
    assert not book.lists_read(BAS)
    book.apply(OrdersSnapshot(3, 2_000, (), (), frozenset({BAS})))  # per symbol: both lists
    assert book.lists_read(BAS)
    assert not book.lists_read("ETHUSDT")  # type: ignore[arg-type]
    book.apply(regular_sweep(at_ms=61_000))
    assert book.lists_read("ETHUSDT")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the reaper (rule 1)


def test_at_a_start_a_bracket_stop_is_not_reaped_before_the_regular_list_was_read() -> None:
    """A bot left an entry (a LIMIT buy, regular) and its stop (algo) on a flat key while no
    watchdog ran. The start's algo sweep finds the stop; the entry is in the regular list, read
    5 minutes later. Reaped after the grace (2 s), the stop would be gone when the entry fills."""
    positions = StubPositions().set_flat(KEY, 1_000)
    book = OrderBook()
    book.apply(algo_sweep(algo_row(9, created_ms=500), at_ms=1_100))
    decision = decide(positions, book, frozenset(), 0, 30_000, POLICY)
    assert decision.cancels == ()
    assert [a.why for a in decision.assessments] == [Why.LISTS_UNREAD]
    entry = order_row(8, side="BUY", reduce_only=False, created_ms=400)
    book.apply(regular_sweep(entry, at_ms=62_000))
    decision = decide(positions, book, frozenset(), 0, 63_000, POLICY)
    assert decision.cancels == ()
    assert {a.order.order_id: a.why for a in decision.assessments}[9] is Why.ENTRY_PENDING


def test_once_both_lists_are_read_an_orphan_goes_as_before() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = OrderBook()
    book.apply(algo_sweep(algo_row(9, created_ms=500), at_ms=1_100))
    book.apply(regular_sweep(at_ms=62_000))
    decision = decide(positions, book, frozenset(), 0, 63_000, POLICY)
    assert [c.order_id for c in decision.cancels] == [9]


def test_a_per_symbol_read_of_the_stops_symbol_lets_it_go_before_the_regular_sweep() -> None:
    """The poller reads a symbol the algo sweep found orders on per symbol (both lists, 2
    weight) within seconds: an orphan is not held for the regular sweep's minute."""
    positions = StubPositions().set_flat(KEY, 1_000)
    book = OrderBook()
    book.apply(algo_sweep(algo_row(9, created_ms=500), at_ms=1_100))
    book.apply(OrdersSnapshot(3, 1_200, (), (algo_row(9, created_ms=500),), frozenset({BAS})))
    decision = decide(positions, book, frozenset(), 0, 30_000, POLICY)
    assert [c.order_id for c in decision.cancels] == [9]


# ---------------------------------------------------------------- the guard (rule 1)


def protections(effects: list[Effect]) -> list[PublishProtection]:
    return [e for e in effects if isinstance(e, PublishProtection)]


def test_the_guard_does_not_take_one_list_s_sweep_for_a_read_of_the_symbol_s_orders() -> None:
    """An open position protected by a regular reduce-only order only: the algo sweep (which
    lists no order of it) must not make the guard judge ``none`` and alert: its orders are
    known only once the regular list was read too."""
    guard, book = Guard(GuardPolicy()), OrderBook()
    positions = Positions({KEY: view(KEY, amount=AMT)})

    def feed(event: object) -> None:
        guard.observe(event)  # type: ignore[arg-type]
        book.apply(event)  # type: ignore[arg-type]

    feed(StreamConnected(1))
    feed(SnapshotRequested(1, T0 - 500))
    feed(algo_sweep(at_ms=T0 - 400))
    first = protections(guard.step(positions, book, no_leases(T0), T0))
    assert [p.protection for p in first] == ["unknown"]
    tp = order_row(8, created_ms=T0 - 1_000, reduce_only=True)
    feed(regular_sweep(tp, at_ms=T0 + 60_000))
    later = protections(guard.step(positions, book, no_leases(T0 + 60_010), T0 + 60_010))
    assert [p.protection for p in later] != ["unknown"]


# ---------------------------------------------------------------- proof and order blindness


def test_an_algo_sweep_neither_proves_nor_drops_a_claim_about_a_regular_order() -> None:
    blind = RaiseAlert("stream_blind", "x", BAS)
    proof = StreamProof(max_rest_lag_ms=2000)
    proof.apply(StreamConnected(1), 0)
    proof.apply(SnapshotRequested(1, 1000), 1000, [blind])
    proof.apply(order_update(8, "CANCELED", at_ms=2_000), 2_000)  # a claim: order 8 ended
    proof.apply(algo_sweep(at_ms=10_000), 10_000)  # the regular list not read: says nothing
    assert proof.state == "unproven"
    effects = proof.apply(regular_sweep(at_ms=11_000), 11_000)  # not listed: the claim holds
    assert any(isinstance(e, Notify) and e.kind == "stream_proven" for e in effects)


def test_order_blindness_takes_no_order_for_ended_when_its_list_was_not_read() -> None:
    watch = OrderBlindness(blind_after_ms=1000, max_rest_lag_ms=2000)
    watch.apply(StreamConnected(1), 0)
    watch.apply(SnapshotRequested(1, 1000), 0)
    watch.apply(order_update(8, "NEW", at_ms=3_500), 0)
    both = OrdersSnapshot(2, 4_000, (order_row(8, created_ms=3_500),), (), frozenset({BAS}))
    watch.apply(both, 0)
    alerts = watch.apply(algo_sweep(at_ms=9_000, request_id=3), 0)
    alerts += watch.apply(SnapshotRequested(4, 20_000), 0)
    assert [e for e in alerts if isinstance(e, RaiseAlert)] == []
