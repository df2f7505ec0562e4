"""binance/protocol/canary.py: the canary order read from exchangeInfo (pure; the simulator's body)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from watchdog.binance.protocol.canary import CanarySpec, canary_params, parse_canary_spec
from watchdog.errors import WireFormatError
from watchdog.sim.market import default_specs, exchange_info


def sim_body() -> dict[str, object]:
    return exchange_info(default_specs(), 0)


def test_trigger_at_max_price_and_the_smallest_quantity() -> None:
    spec = parse_canary_spec(sim_body(), "BASUSDT")
    assert spec.trigger_price == Decimal("1000000")
    assert spec.quantity > 0
    params = canary_params(spec, "wd-canary-1")
    assert params["side"] == "BUY"
    assert params["type"] == "STOP_MARKET"
    assert params["reduceOnly"] == "true"
    assert "closePosition" not in params  # one close-all per direction: never the bot's way
    assert params["clientAlgoId"] == "wd-canary-1"


def test_the_trigger_is_on_the_tick_grid() -> None:
    body = {"symbols": [{"symbol": "XUSDT", "filters": [
        {"filterType": "PRICE_FILTER", "maxPrice": "4529764.05", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "stepSize": "0.001"}]}]}
    assert parse_canary_spec(body, "XUSDT") == CanarySpec("XUSDT", Decimal("4529764"),
                                                          Decimal("0.001"))


@pytest.mark.parametrize("body", [
    {}, {"symbols": "x"}, {"symbols": []},
    {"symbols": [{"symbol": "XUSDT", "filters": []}]},
    {"symbols": [{"symbol": "XUSDT", "filters": [
        {"filterType": "PRICE_FILTER", "maxPrice": "inf", "tickSize": "0.1"},
        {"filterType": "LOT_SIZE", "minQty": "1", "stepSize": "1"}]}]},
])
def test_odd_bodies_are_a_wire_format_error(body: object) -> None:
    with pytest.raises(WireFormatError):
        parse_canary_spec(body, "XUSDT")
