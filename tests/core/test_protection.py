"""Coverage over random order books and positions (core/protection.py rules 1-5)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tests.core.reaper_support import BAS, KEY, LONG, SHORT, algo_row, order_row, snapshot
from watchdog.core.model import AlgoStatus, OrderId, PositionKey, PositionSide
from watchdog.core.orders import OrderBook, TrackedOrder
from watchdog.core.protection import STOP_TYPES, Protection, closing_side, coverage, order_cover

ORDER_TYPES = ("STOP", "STOP_MARKET", "TRAILING_STOP_MARKET", "TAKE_PROFIT",
               "TAKE_PROFIT_MARKET", "LIMIT", "MARKET")
KEYS = (KEY, LONG, SHORT)


def tracked(oid: int, key: PositionKey = KEY, *, side: str = "SELL", order_type: str = "STOP_MARKET",
            is_algo: bool = True, status: str = "NEW", reduce_only: bool = True,
            close_position: bool = False, quantity: str = "10", child: int | None = None,
            client_id: str = "bot") -> TrackedOrder:
    return TrackedOrder(key=key, order_id=OrderId(oid), is_algo=is_algo, client_id=client_id,
                        side=side, order_type=order_type, status=status,
                        reduce_only=reduce_only, close_position=close_position,
                        create_time_ms=1, status_since_ms=1, seen_time_ms=1,
                        child_order_id=None if child is None else OrderId(child),
                        quantity=Decimal(quantity))


def nobody(_: OrderId) -> bool:
    return False


orders_st = st.builds(
    tracked, oid=st.integers(1, 10**6), key=st.sampled_from(KEYS),
    side=st.sampled_from(("BUY", "SELL")), order_type=st.sampled_from(ORDER_TYPES),
    is_algo=st.booleans(),
    status=st.sampled_from(("NEW", "TRIGGERING", "TRIGGERED", "PARTIALLY_FILLED")),
    reduce_only=st.booleans(), close_position=st.booleans(),
    quantity=st.sampled_from(("0", "1", "5", "9.99", "10", "10.01", "50")),
    child=st.one_of(st.none(), st.integers(1, 20)))
amounts = st.sampled_from(("-50", "-10", "-0.5", "0.5", "10", "50")).map(Decimal)


def oracle(key: PositionKey, amount: Decimal, orders: list[TrackedOrder],
           live_children: frozenset[int]) -> Protection:
    """The issue's rules spelled out independently of the implementation."""
    if key.side is PositionSide.LONG:
        closing = "SELL"
    elif key.side is PositionSide.SHORT:
        closing = "BUY"
    else:
        closing = "SELL" if amount > 0 else "BUY"
    answers = set()
    for o in orders:
        if o.key != key or o.side != closing or o.order_type not in STOP_TYPES:
            continue
        if o.is_algo and o.status == "TRIGGERED" and o.child_order_id not in live_children:
            continue
        hedge_closing = key.side is not PositionSide.BOTH  # the side above already matched
        if o.close_position:
            answers.add(Protection.COVERED)
        elif (o.reduce_only or hedge_closing) and o.quantity > 0:
            answers.add(Protection.COVERED if o.quantity >= abs(amount) else Protection.PARTIAL)
    for answer in (Protection.COVERED, Protection.PARTIAL):
        if answer in answers:
            return answer
    return Protection.NONE


@given(key=st.sampled_from(KEYS), amount=amounts, orders=st.lists(orders_st, max_size=8),
       live=st.frozensets(st.integers(1, 20), max_size=10))
def test_coverage_matches_the_rules_over_random_books(key: PositionKey, amount: Decimal,
                                                      orders: list[TrackedOrder],
                                                      live: frozenset[int]) -> None:
    mine = [o for o in orders if o.key == key]
    got = coverage(amount, mine, lambda oid: oid in live)
    assert got is oracle(key, amount, mine, live)


@given(key=st.sampled_from(KEYS), amount=amounts, orders=st.lists(orders_st, max_size=6),
       extra=orders_st)
def test_adding_an_order_never_lowers_coverage(key: PositionKey, amount: Decimal,
                                               orders: list[TrackedOrder],
                                               extra: TrackedOrder) -> None:
    rank = {Protection.NONE: 0, Protection.PARTIAL: 1, Protection.COVERED: 2}
    mine = [o for o in orders if o.key == key]
    before = coverage(amount, mine, nobody)
    after = coverage(amount, [*mine, extra] if extra.key == key else mine, nobody)
    assert rank[after] >= rank[before]


@given(amount=amounts, qty=st.sampled_from(("1", "10", "50")),
       order_type=st.sampled_from(("TAKE_PROFIT", "TAKE_PROFIT_MARKET", "LIMIT", "MARKET")),
       close=st.booleans())
def test_take_profits_and_plain_orders_never_protect(amount: Decimal, qty: str, order_type: str,
                                                     close: bool) -> None:
    side = closing_side(KEY, amount)
    assert side is not None
    order = tracked(1, side=side, order_type=order_type, quantity=qty, close_position=close)
    assert order_cover(order, amount, nobody) is Protection.NONE


def test_quantity_decides_covered_or_partial() -> None:
    assert order_cover(tracked(1, quantity="10"), Decimal(10), nobody) is Protection.COVERED
    assert order_cover(tracked(1, quantity="11"), Decimal(10), nobody) is Protection.COVERED
    assert order_cover(tracked(1, quantity="9.9"), Decimal(10), nobody) is Protection.PARTIAL
    assert order_cover(tracked(1, quantity="0", close_position=True), Decimal(10),
                       nobody) is Protection.COVERED


def test_wrong_side_and_non_reduce_only_do_not_protect() -> None:
    assert order_cover(tracked(1, side="BUY"), Decimal(10), nobody) is Protection.NONE
    assert order_cover(tracked(1, side="SELL"), Decimal(-10), nobody) is Protection.NONE
    assert order_cover(tracked(1, reduce_only=False), Decimal(10), nobody) is Protection.NONE


def test_hedge_sides_close_by_their_side_without_the_flag() -> None:
    assert order_cover(tracked(1, LONG, side="SELL", reduce_only=False), Decimal(10),
                       nobody) is Protection.COVERED
    assert order_cover(tracked(1, SHORT, side="BUY", reduce_only=False), Decimal(-10),
                       nobody) is Protection.COVERED
    assert order_cover(tracked(1, SHORT, side="SELL", reduce_only=False), Decimal(-10),
                       nobody) is Protection.NONE


def test_triggered_algo_counts_only_while_its_child_is_open() -> None:
    triggered = tracked(1, status=AlgoStatus.TRIGGERED.value, child=7)
    assert order_cover(triggered, Decimal(10), lambda oid: oid == 7) is Protection.COVERED
    assert order_cover(triggered, Decimal(10), nobody) is Protection.NONE
    no_child_yet = tracked(1, status=AlgoStatus.TRIGGERED.value)
    assert order_cover(no_child_yet, Decimal(10), lambda oid: True) is Protection.NONE
    triggering = tracked(1, status=AlgoStatus.TRIGGERING.value)
    assert order_cover(triggering, Decimal(10), nobody) is Protection.COVERED


def test_the_order_book_carries_quantity_for_coverage() -> None:
    """Through the real OrderBook: REST rows keep their quantity (1216 in the fixtures)."""
    book = OrderBook()
    book.apply(snapshot(algos=(algo_row(1, order_type="TAKE_PROFIT_MARKET"),
                               algo_row(2, order_type="STOP_MARKET")),
                        orders=(order_row(3),), symbols=frozenset({BAS})))

    def child_open(oid: OrderId) -> bool:
        return book.get(oid, is_algo=False) is not None

    assert coverage(Decimal(1216), book.orders_for(KEY), child_open) is Protection.COVERED
    assert coverage(Decimal(2000), book.orders_for(KEY), child_open) is Protection.PARTIAL
    assert coverage(Decimal(-5), book.orders_for(KEY), child_open) is Protection.NONE
