"""The pure model (no sockets): position arithmetic, trigger rules, event consistency, history."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.clock import ManualClock
from watchdog.sim.account import Position
from watchdog.sim.exchange import SimExchange
from watchdog.sim.market import default_specs
from watchdog.sim.orders import would_trigger
from watchdog.sim.rejections import Rejection

quantities = st.integers(min_value=-50, max_value=50).filter(bool).map(Decimal)
prices = st.integers(min_value=1, max_value=1000).map(Decimal)


@given(st.lists(st.tuples(quantities, prices), min_size=1, max_size=30), prices)
def test_position_pnl_matches_cash_flow(fills: list[tuple[Decimal, Decimal]], mark: Decimal) -> None:
    """realised + unrealised PnL == what the trades cost and what the position is worth."""
    position = Position("X", "BOTH")
    cash = Decimal(0)
    for delta, price in fills:
        position.apply(delta, price)
        cash -= delta * price
    assert position.amount == sum(d for d, _ in fills)
    # Equal up to the rounding of the averaged entry price (28 significant digits).
    difference = position.realized + position.unrealized(mark) - (cash + position.amount * mark)
    assert abs(difference) < Decimal("1e-20")
    if position.amount == 0:
        assert position.entry == 0


@pytest.mark.parametrize(("order_type", "side", "above_fires"), [
    ("STOP_MARKET", "BUY", True), ("STOP", "BUY", True), ("STOP_MARKET", "SELL", False),
    ("TAKE_PROFIT_MARKET", "BUY", False), ("TAKE_PROFIT", "SELL", True), ("TAKE_PROFIT_MARKET", "SELL", True),
])
def test_trigger_table(order_type: str, side: str, above_fires: bool) -> None:
    trigger = Decimal(100)
    assert would_trigger(order_type, side, trigger, trigger)  # the boundary fires
    assert would_trigger(order_type, side, trigger, Decimal(101)) is above_fires
    assert would_trigger(order_type, side, trigger, Decimal(99)) is not above_fires


def _exchange() -> tuple[SimExchange, ManualClock]:
    clock = ManualClock(now_ms=1_000_000)  # the exchange's clock: only its wall time is read
    exchange = SimExchange(default_specs(), now_ms=clock.wall_ms)
    exchange.add_account("k", "s")
    return exchange, clock


def test_every_account_update_matches_rest_state() -> None:
    exchange, clock = _exchange()
    for side, qty in (("BUY", "0.010"), ("BUY", "0.005"), ("SELL", "0.020"), ("BUY", "0.005")):
        clock.now_ms += 10
        exchange.market_fill("k", "BTCUSDT", side, Decimal(qty), None)
        update = [o.event for o in exchange.outbox if o.event["e"] == "ACCOUNT_UPDATE"][-1]
        view = exchange.view("k")
        (row,) = update["a"]["P"]  # type: ignore[index]
        assert Decimal(row["pa"]) == next(p.amount for p in view.positions if p.symbol == "BTCUSDT")
        assert update["E"] == clock.now_ms


def test_refusals_change_nothing() -> None:
    exchange, _ = _exchange()
    before = exchange.view("k")
    with pytest.raises(Rejection) as info:
        exchange.place_order("k", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                   "quantity": "0.010", "reduceOnly": "true"})
    assert info.value.code == -2022
    assert exchange.outbox == []
    assert exchange.view("k").positions == before.positions


def test_history_answers_as_of_a_lag() -> None:
    exchange, clock = _exchange()
    exchange.market_fill("k", "BTCUSDT", "BUY", Decimal("0.010"), None)
    clock.now_ms += 5_000
    exchange.market_fill("k", "BTCUSDT", "BUY", Decimal("0.010"), None)
    clock.now_ms += 5_000

    def amount(lag_ms: int) -> Decimal:
        view = exchange.view("k", lag_ms)
        return sum((p.amount for p in view.positions), Decimal(0))

    assert (amount(0), amount(4_000), amount(9_000), amount(60_000)) == (
        Decimal("0.020"), Decimal("0.020"), Decimal("0.010"), Decimal(0))


def test_listen_key_expiry_is_driven_by_the_clock() -> None:
    exchange, clock = _exchange()
    key = exchange.create_listen_key("k")
    clock.now_ms += 59 * 60 * 1000
    assert exchange.keepalive_listen_key("k") == key
    clock.now_ms += 59 * 60 * 1000
    assert exchange.expire_listen_keys() == []
    clock.now_ms += 60 * 1000
    assert exchange.expire_listen_keys() == [key]
    assert exchange.outbox[-1].event == {"e": "listenKeyExpired", "E": str(clock.now_ms), "listenKey": key}
    assert exchange.outbox[-1].listen_key == key
    with pytest.raises(Rejection):
        exchange.keepalive_listen_key("k")
    assert exchange.create_listen_key("k") != key
