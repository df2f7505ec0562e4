"""Random interleavings of fills, stops, cancels and price moves on the pure model.

Invariants: the last ACCOUNT_UPDATE per position equals REST; every algo's ALGO_UPDATE statuses
follow Binance's lifecycle; a triggered algo's child carries ``c`` = clientAlgoId and its
orderId is ``ai``; refusals emit nothing; nothing is open beyond the cap.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.sim.exchange import SimExchange
from watchdog.sim.market import default_specs
from watchdog.sim.rejections import Rejection

LIFECYCLE = {
    None: {"NEW"},
    "NEW": {"NEW", "CANCELED", "TRIGGERING"},  # NEW twice: trailing activation (ia)
    "TRIGGERING": {"TRIGGERED", "REJECTED"},
    "TRIGGERED": {"FINISHED"},
}

sides = st.sampled_from(["BUY", "SELL"])
qtys = st.integers(min_value=1, max_value=5).map(lambda n: Decimal(n) / 1000)
prices = st.integers(min_value=85_000, max_value=95_000).map(Decimal)
actions = st.lists(st.one_of(
    st.tuples(st.just("fill"), sides, qtys),
    st.tuples(st.just("stop"), sides, st.sampled_from(["STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP",
                                                       "TAKE_PROFIT", "TRAILING_STOP_MARKET"]),
              prices, st.booleans()),
    st.tuples(st.just("price"), prices, prices),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=10)),
), max_size=40)


def _apply(exchange: SimExchange, action: tuple[Any, ...]) -> None:
    kind = action[0]
    if kind == "fill":
        exchange.market_fill("k", "BTCUSDT", action[1], action[2], None)
    elif kind == "stop":
        _, side, order_type, trigger, close_all = action
        params = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": side, "type": order_type}
        if order_type == "TRAILING_STOP_MARKET":
            params["callbackRate"] = "1"
        else:
            params["triggerPrice"] = f"{trigger:f}"
        if order_type in ("STOP", "TAKE_PROFIT"):
            params.update(price=f"{trigger:f}", timeInForce="GTC")
        if close_all and order_type in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            params["closePosition"] = "true"
        else:
            params.update(quantity="0.003", reduceOnly="true")
        exchange.place_algo("k", params)
    elif kind == "price":
        exchange.set_price("BTCUSDT", mark=action[1], last=action[2])
    else:
        algos = exchange.account("k").open_algos()
        if algos:
            exchange.cancel_algo("k", algos[action[1] % len(algos)].algo_id, None)


@settings(max_examples=60, deadline=None)
@given(actions)
def test_random_interleavings_keep_the_invariants(steps: list[tuple[Any, ...]]) -> None:
    clock = iter(range(1_000_000, 10_000_000, 7))
    exchange = SimExchange(default_specs(), now_ms=lambda: next(clock))
    exchange.add_account("k", "s")
    for step in steps:
        before = len(exchange.outbox)
        try:
            _apply(exchange, step)
        except Rejection:
            assert len(exchange.outbox) == before  # a refusal emits nothing
    account = exchange.account("k")

    last_pa: dict[tuple[str, str], Decimal] = {}
    status: dict[int, str | None] = {}
    for item in exchange.outbox:
        event: Any = item.event
        if event["e"] == "ACCOUNT_UPDATE":
            for row in event["a"]["P"]:
                last_pa[(row["s"], row["ps"])] = Decimal(row["pa"])
        elif event["e"] == "ALGO_UPDATE":
            o = event["o"]
            previous = status.get(o["aid"])
            assert o["X"] in LIFECYCLE[previous], (previous, o["X"])
            status[o["aid"]] = o["X"]
            if o["X"] == "TRIGGERED":
                child = account.orders[int(o["ai"])]
                assert child.client_id == o["caid"]
                assert child.algo_id == o["aid"]
    for key, amount in last_pa.items():
        assert account.positions[key].amount == amount
    for algo in account.algos.values():
        assert status[algo.algo_id] == algo.status
    assert len(account.open_algos()) <= exchange.algo_cap
    net = sum((p.amount for p in account.positions.values()), Decimal(0))
    assert net == sum((exchange.view("k").positions[i].amount
                       for i in range(len(exchange.view("k").positions))), Decimal(0))
