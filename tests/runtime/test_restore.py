"""restore_params: the order a lost race puts back is the one cancelled, or none at all."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from watchdog.runtime.restore import (
    RESTORE_CLIENT_ID_PREFIX,
    RestoreImpossible,
    new_client_id,
    reduces,
    restore_params,
)

# docs/BINANCE.md §3.4's real example (freqtrade#13358), trimmed to what matters.
ALGO: dict[str, Any] = {
    "algoId": 4000001783523430, "clientAlgoId": "x-cvBPrNm903c051e8321fb6bd7f528b",
    "algoType": "CONDITIONAL", "orderType": "STOP_MARKET", "symbol": "1000BONKUSDT",
    "side": "SELL", "positionSide": "BOTH", "timeInForce": "GTC", "quantity": "109673",
    "algoStatus": "NEW", "triggerPrice": "0.0029410", "price": "0.0000000",
    "workingType": "CONTRACT_PRICE", "closePosition": False, "priceProtect": False,
    "reduceOnly": True}


def test_a_reduce_only_stop_market_is_replayed_exactly() -> None:
    assert restore_params(ALGO, is_algo=True, client_id="wd-rs-1") == {
        "algoType": "CONDITIONAL", "symbol": "1000BONKUSDT", "side": "SELL",
        "type": "STOP_MARKET", "positionSide": "BOTH", "workingType": "CONTRACT_PRICE",
        "timeInForce": "GTC", "triggerPrice": "0.0029410", "quantity": "109673",
        "reduceOnly": "true", "clientAlgoId": "wd-rs-1"}


def test_close_position_mark_price_and_price_protect() -> None:
    raw = {**ALGO, "closePosition": True, "reduceOnly": False, "quantity": "0",
           "workingType": "MARK_PRICE", "priceProtect": True, "positionSide": "LONG"}
    params = restore_params(raw, is_algo=True, client_id="wd-rs-2")
    assert params["closePosition"] == "true"
    assert "quantity" not in params
    assert "reduceOnly" not in params
    assert (params["workingType"], params["priceProtect"], params["positionSide"]) == (
        "MARK_PRICE", "TRUE", "LONG")


def test_trailing_stop_keeps_its_callback_and_activation() -> None:
    raw = {**ALGO, "orderType": "TRAILING_STOP_MARKET", "triggerPrice": "0",
           "callbackRate": "1.5", "activatePrice": "0.0031000"}
    params = restore_params(raw, is_algo=True, client_id="wd-rs-3")
    assert (params["callbackRate"], params["activatePrice"]) == ("1.5", "0.0031000")
    assert "triggerPrice" not in params


def test_stop_limit_keeps_its_limit_price() -> None:
    params = restore_params({**ALGO, "orderType": "STOP", "price": "0.0029000"}, is_algo=True,
                            client_id="wd-rs-4")
    assert params["price"] == "0.0029000"


def test_a_resting_reduce_only_limit_is_replayed_for_what_is_left() -> None:
    raw = {"orderId": 8, "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH",
           "type": "LIMIT", "status": "PARTIALLY_FILLED", "price": "95000.0", "origQty": "0.010",
           "executedQty": "0.004", "timeInForce": "GTC", "reduceOnly": True,
           "closePosition": False, "workingType": "CONTRACT_PRICE"}
    assert restore_params(raw, is_algo=False, client_id="wd-rs-5") == {
        "symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "positionSide": "BOTH",
        "timeInForce": "GTC", "price": "95000.0", "quantity": "0.006", "reduceOnly": "true",
        "newClientOrderId": "wd-rs-5"}


@pytest.mark.parametrize(("raw", "is_algo", "why"), [
    ({**ALGO, "orderType": "LIMIT"}, True, "not a conditional order type"),
    ({**ALGO, "triggerPrice": "0"}, True, "without triggerPrice"),
    ({**ALGO, "quantity": ""}, True, "no quantity"),
    ({**ALGO, "side": None}, True, "no side"),
    ({**ALGO, "orderType": "TRAILING_STOP_MARKET", "callbackRate": ""}, True, "callbackRate"),
    ({"type": "MARKET", "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH"}, False,
     "only a resting LIMIT"),
])
def test_what_cannot_be_replayed_exactly_is_refused(raw: dict[str, Any], is_algo: bool,
                                                    why: str) -> None:
    with pytest.raises(RestoreImpossible, match=why):
        restore_params(raw, is_algo=is_algo, client_id="wd-rs-6")


def test_client_ids_are_ours_and_within_binance_limits() -> None:
    cid = new_client_id(2**63 - 1)
    assert cid.startswith(RESTORE_CLIENT_ID_PREFIX)
    assert len(cid) <= 36


@pytest.mark.parametrize(("side", "amount", "expected"), [
    ("SELL", "1", True), ("SELL", "-1", False), ("BUY", "-1", True), ("BUY", "1", False),
    ("SELL", "0", False),
])
def test_reduces(side: str, amount: str, expected: bool) -> None:
    assert reduces(side, Decimal(amount)) is expected
