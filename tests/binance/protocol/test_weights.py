"""The one weight table (``binance/protocol/weights.py``): what each request costs, and that the
client, the schedule, the stream and the configuration check all price from it."""

from __future__ import annotations

import math

import pytest

from watchdog.binance.protocol import budget, schedule, weights
from watchdog.binance.protocol.weights import (
    ALL_SYMBOLS_WEIGHTS,
    CONNECT_WEIGHT,
    IP_WEIGHT_LIMIT_PER_MIN,
    ORDERS_WEIGHT,
    POSITIONS_WEIGHT,
    SWEEP_WEIGHT,
    WEIGHTS,
    request_weight,
)
from watchdog.config import ConfigError, parse_config


@pytest.mark.parametrize(("endpoint", "has_symbol", "weight"), [
    ("GET /fapi/v3/positionRisk", False, 5),
    ("GET /fapi/v3/positionRisk", True, 5),
    ("GET /fapi/v1/openOrders", True, 1),
    ("GET /fapi/v1/openOrders", False, 40),      # every symbol at once
    ("GET /fapi/v1/openAlgoOrders", True, 1),
    ("GET /fapi/v1/openAlgoOrders", False, 40),
    ("GET /fapi/v1/positionSide/dual", False, 30),
    ("POST /fapi/v1/order", True, 0),            # order count only
    ("POST /fapi/v1/algoOrder", True, 0),
    ("POST /fapi/v1/listenKey", False, 1),
    ("PUT /fapi/v1/listenKey", False, 1),
    ("GET /fapi/v1/unlisted", False, 1),         # an unlisted endpoint: the common price
])
def test_request_weight(endpoint: str, has_symbol: bool, weight: int) -> None:
    assert request_weight(endpoint, has_symbol=has_symbol) == weight


def test_planned_costs_are_sums_of_the_table() -> None:
    assert IP_WEIGHT_LIMIT_PER_MIN == 2400
    assert POSITIONS_WEIGHT == WEIGHTS["GET /fapi/v3/positionRisk"] == 5
    assert ORDERS_WEIGHT == 2
    assert SWEEP_WEIGHT == sum(ALL_SYMBOLS_WEIGHTS.values()) == 80
    assert CONNECT_WEIGHT == WEIGHTS["POST /fapi/v1/listenKey"] + POSITIONS_WEIGHT == 6


def test_every_user_reads_the_one_table() -> None:
    """No second copy: the budget, the schedule, the client and config use these objects."""
    assert budget.IP_WEIGHT_LIMIT_PER_MIN is weights.IP_WEIGHT_LIMIT_PER_MIN
    assert schedule.POSITIONS_WEIGHT is weights.POSITIONS_WEIGHT
    assert schedule.SWEEP_WEIGHT is weights.SWEEP_WEIGHT
    from watchdog import config
    from watchdog.binance import rest, stream
    assert rest.request_weight is weights.request_weight
    assert stream.CONNECT_WEIGHT is weights.CONNECT_WEIGHT
    assert config.POSITIONS_WEIGHT is weights.POSITIONS_WEIGHT
    assert config.SWEEP_WEIGHT is weights.SWEEP_WEIGHT
    assert config.IP_WEIGHT_LIMIT_PER_MIN is weights.IP_WEIGHT_LIMIT_PER_MIN


def _error(binance: dict[str, object]) -> ConfigError | None:
    try:
        parse_config({"binance": binance}, "cfg.toml")
    except ConfigError as exc:
        return exc
    return None


@pytest.mark.parametrize("pct", [5, 15, 40])
def test_config_prices_the_positions_poll_from_the_table(pct: int) -> None:
    """Config refuses a poll interval at which positionRisk alone costs more than the share."""
    share = IP_WEIGHT_LIMIT_PER_MIN * pct / 100
    shortest_s = 60 * POSITIONS_WEIGHT / share
    common = {"weight_budget_pct": pct, "fast_poll_interval_s": 0.05,
              "orders_sweep_interval_s": 3600.0}
    assert _error({**common, "poll_interval_s": shortest_s * 1.1}) is None
    error = _error({**common, "poll_interval_s": shortest_s * 0.9})
    assert error is not None
    assert error.key == "poll_interval_s"
    assert f"of {IP_WEIGHT_LIMIT_PER_MIN} ({share:.0f})" in error.problem


def test_config_prices_the_sweep_from_the_table() -> None:
    poll_s, pct = 1.0, 15
    room = IP_WEIGHT_LIMIT_PER_MIN * pct / 100 - 60 / poll_s * POSITIONS_WEIGHT  # 60 a minute
    shortest_s = 60 * SWEEP_WEIGHT / room
    common = {"weight_budget_pct": pct, "poll_interval_s": poll_s}
    assert _error({**common, "orders_sweep_interval_s": math.ceil(shortest_s)}) is None
    error = _error({**common, "orders_sweep_interval_s": shortest_s * 0.9})
    assert error is not None
    assert error.key == "orders_sweep_interval_s"
    assert f"reads of weight {ALL_SYMBOLS_WEIGHTS['GET /fapi/v1/openOrders']}" in error.problem
