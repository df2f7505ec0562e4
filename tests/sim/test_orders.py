"""Matching, trigger rules and order errors over real sockets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support.simulator import SimClient
from watchdog.sim import Simulator

# BTCUSDT starts at 90000.00 (mark and contract price).


async def _algo(c: SimClient, **params: Any) -> Any:
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT"}
    return await c.post("/fapi/v1/algoOrder", **{**base, **params})


def _status(sim: Simulator, algo_id: int) -> str:
    return sim.exchange.find_algo(sim.api_key, algo_id, None).status


@pytest.mark.parametrize(("order_type", "side", "trigger", "fires_at", "stays_at"), [
    ("STOP_MARKET", "SELL", "89000", "88999.9", "89000.1"),
    ("STOP_MARKET", "BUY", "91000", "91000.0", "90999.9"),
    ("TAKE_PROFIT_MARKET", "SELL", "91000", "91000.0", "90999.9"),
    ("TAKE_PROFIT_MARKET", "BUY", "89000", "88999.9", "89000.1"),
    ("STOP", "SELL", "89000", "89000.0", "89000.1"),
    ("STOP", "BUY", "91000", "91000.0", "90999.9"),
    ("TAKE_PROFIT", "SELL", "91000", "91000.1", "90999.9"),
    ("TAKE_PROFIT", "BUY", "89000", "89000.0", "89000.1"),
])
async def test_trigger_rules(sim: Simulator, sim_client: SimClient, order_type: str, side: str,
                             trigger: str, fires_at: str, stays_at: str) -> None:
    sim.fill("BTCUSDT", "BUY" if side == "SELL" else "SELL", "0.010")
    extra = {"price": trigger, "timeInForce": "GTC"} if order_type in ("STOP", "TAKE_PROFIT") else {}
    response = await _algo(sim_client, side=side, type=order_type, triggerPrice=trigger,
                           quantity="0.010", reduceOnly="true", **extra)
    assert response.status_code == 200, response.text
    algo_id = response.json()["algoId"]
    sim.set_mark_price("BTCUSDT", stays_at)
    assert _status(sim, algo_id) == "NEW"
    sim.set_mark_price("BTCUSDT", fires_at)
    assert _status(sim, algo_id) == "FINISHED"
    assert all(p.amount == 0 for p in sim.exchange.account(sim.api_key).positions.values())


@pytest.mark.parametrize(("order_type", "side", "trigger"), [
    ("STOP_MARKET", "SELL", "90000"), ("STOP_MARKET", "BUY", "89999.9"),
    ("TAKE_PROFIT_MARKET", "SELL", "89000"), ("TAKE_PROFIT_MARKET", "BUY", "90000.1"),
])
async def test_would_immediately_trigger_is_2021(sim_client: SimClient, order_type: str, side: str,
                                                 trigger: str) -> None:
    response = await _algo(sim_client, side=side, type=order_type, triggerPrice=trigger, quantity="0.01")
    assert response.status_code == 400
    assert response.json() == {"code": -2021, "msg": "Order would immediately trigger."}


async def test_working_type_chooses_mark_or_contract_price(sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("BTCUSDT", "BUY", "0.020")
    on_mark = (await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice="89000",
                           quantity="0.010", workingType="MARK_PRICE")).json()["algoId"]
    on_last = (await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice="89000",
                           quantity="0.010")).json()["algoId"]
    sim.set_mark_price("BTCUSDT", "88000", contract_price="89500")
    assert (_status(sim, on_mark), _status(sim, on_last)) == ("FINISHED", "NEW")
    sim.set_mark_price("BTCUSDT", "89500", contract_price="88500")
    assert _status(sim, on_last) == "FINISHED"


async def test_trailing_stop_activates_then_fires_on_callback(sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("BTCUSDT", "BUY", "0.010")
    bad = await _algo(sim_client, side="SELL", type="TRAILING_STOP_MARKET", quantity="0.010",
                      activatePrice="89000", callbackRate="1")
    assert bad.json()["code"] == -2021  # SELL activatePrice <= latest
    response = await _algo(sim_client, side="SELL", type="TRAILING_STOP_MARKET", quantity="0.010",
                           activatePrice="91000", callbackRate="1", reduceOnly="true")
    assert response.status_code == 200, response.text
    algo_id = response.json()["algoId"]
    assert response.json()["activatePrice"] == "91000.00"
    sim.set_mark_price("BTCUSDT", "92000")  # activates; best price 92000
    sim.set_mark_price("BTCUSDT", "91080.1")  # 1 % below 92000 is 91080
    assert _status(sim, algo_id) == "NEW"
    sim.set_mark_price("BTCUSDT", "91080")
    assert _status(sim, algo_id) == "FINISHED"


async def test_trailing_stop_requires_callback_rate(sim_client: SimClient) -> None:
    response = await _algo(sim_client, side="SELL", type="TRAILING_STOP_MARKET", quantity="0.010")
    assert response.json()["code"] == -1102


async def test_conditional_types_on_order_endpoint_are_4120(sim_client: SimClient) -> None:
    for order_type in ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET"):
        response = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="SELL",
                                          type=order_type, quantity="0.01", stopPrice="80000")
        assert response.json()["code"] == -4120, order_type


async def test_missing_trigger_price_is_1102(sim_client: SimClient) -> None:
    response = await _algo(sim_client, side="SELL", type="STOP_MARKET", quantity="0.01")
    assert response.json() == {"code": -1102, "msg": "Mandatory parameter 'triggerprice' was not sent, "
                                                     "was empty/null, or malformed."}


async def test_reduce_only_without_position_is_2022(sim: Simulator, sim_client: SimClient) -> None:
    response = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="MARKET",
                                     quantity="0.01", reduceOnly="true")
    assert response.json() == {"code": -2022, "msg": "ReduceOnly Order is rejected."}
    sim.fill("BTCUSDT", "BUY", "0.010")
    same_direction = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
                                           quantity="0.01", reduceOnly="true")
    assert same_direction.json()["code"] == -2022
    capped = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="MARKET",
                                   quantity="0.05", reduceOnly="true", newOrderRespType="RESULT")
    assert capped.json()["executedQty"] == "0.010"
    assert sim.exchange.account(sim.api_key).position("BTCUSDT", "BOTH").amount == 0


async def test_close_position_rules(sim: Simulator, sim_client: SimClient) -> None:
    both = await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice="80000", quantity="0.01",
                       closePosition="true")
    assert both.json()["code"] == -4137
    limit = await _algo(sim_client, side="SELL", type="STOP", triggerPrice="80000", price="80000",
                        closePosition="true")
    assert limit.json()["code"] == -4136
    reduce = await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice="80000",
                         closePosition="true", reduceOnly="true")
    assert reduce.json()["code"] == -1106
    # A close-all stop with no position left is rejected when it triggers.
    orphan = (await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice="80000",
                          closePosition="true")).json()
    assert orphan["closePosition"] is True
    assert orphan["quantity"] == "0.000"
    sim.set_mark_price("BTCUSDT", "79000")
    algo = sim.exchange.find_algo(sim.api_key, orphan["algoId"], None)
    assert (algo.status, algo.reject_reason) == ("REJECTED", "Reduce Only reject")


async def test_close_position_closes_whatever_is_open(sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("BTCUSDT", "SELL", "0.030")
    algo = (await _algo(sim_client, side="BUY", type="STOP_MARKET", triggerPrice="95000",
                        closePosition="true")).json()
    sim.fill("BTCUSDT", "SELL", "0.010")  # position grew after the stop was placed
    sim.set_mark_price("BTCUSDT", "95000")
    child_id = sim.exchange.find_algo(sim.api_key, algo["algoId"], None).actual_order_id
    child = sim.exchange.find_order(sim.api_key, "BTCUSDT", child_id, None)
    assert child.executed_qty == child.qty == Decimal("0.040")
    assert child.client_id == algo["clientAlgoId"]
    assert sim.exchange.account(sim.api_key).position("BTCUSDT", "BOTH").amount == 0


async def test_unknown_orders_are_2011_and_2013(sim: Simulator, sim_client: SimClient) -> None:
    algo = (await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice="80000",
                        quantity="0.01")).json()
    # An algoId is not an orderId (docs/BINANCE.md §3.1).
    cancel = await sim_client.delete("/fapi/v1/order", symbol="BTCUSDT", orderId=algo["algoId"])
    assert cancel.json() == {"code": -2011, "msg": "Unknown order sent."}
    query = await sim_client.get("/fapi/v1/order", symbol="BTCUSDT", orderId=algo["algoId"])
    assert query.json() == {"code": -2013, "msg": "Order does not exist."}
    gone = await sim_client.delete("/fapi/v1/algoOrder", algoId=algo["algoId"])
    assert gone.json() == {"algoId": algo["algoId"], "clientAlgoId": algo["clientAlgoId"],
                           "code": "200", "msg": "success"}
    again = await sim_client.delete("/fapi/v1/algoOrder", algoId=algo["algoId"])
    assert again.json()["code"] == -2011
    fetched = await sim_client.get("/fapi/v1/algoOrder", algoId=algo["algoId"])
    assert fetched.json()["algoStatus"] == "CANCELED"


async def test_triggered_limit_child_is_cancelled_on_the_order_endpoint(sim: Simulator,
                                                                         sim_client: SimClient) -> None:
    sim.fill("BTCUSDT", "BUY", "0.010")
    algo = (await _algo(sim_client, side="SELL", type="STOP", triggerPrice="89000", price="89500",
                        quantity="0.010", timeInForce="GTC", reduceOnly="true")).json()
    sim.set_mark_price("BTCUSDT", "88900")  # triggers; the SELL LIMIT at 89500 rests above
    record = sim.exchange.find_algo(sim.api_key, algo["algoId"], None)
    assert record.status == "TRIGGERED"
    assert (await sim_client.delete("/fapi/v1/algoOrder", algoId=algo["algoId"])).json()["code"] == -2011
    open_orders = (await sim_client.get("/fapi/v1/openOrders", symbol="BTCUSDT")).json()
    assert [o["orderId"] for o in open_orders] == [record.actual_order_id]
    assert open_orders[0]["clientOrderId"] == algo["clientAlgoId"]
    cancel = await sim_client.delete("/fapi/v1/order", symbol="BTCUSDT",
                                     origClientOrderId=algo["clientAlgoId"])
    assert cancel.json()["status"] == "CANCELED"
    assert sim.exchange.find_algo(sim.api_key, algo["algoId"], None).status == "FINISHED"


async def test_limit_rests_and_fills_when_crossed(sim: Simulator, sim_client: SimClient) -> None:
    placed = (await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                    timeInForce="GTC", quantity="0.010", price="89000")).json()
    assert placed["status"] == "NEW"
    sim.set_mark_price("BTCUSDT", "89000.1")
    resting = await sim_client.get("/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
    assert resting.json()["status"] == "NEW"
    sim.set_mark_price("BTCUSDT", "88950")
    filled = (await sim_client.get("/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])).json()
    assert (filled["status"], filled["avgPrice"]) == ("FILLED", "89000.00")


async def test_cancel_all_endpoints(sim: Simulator, sim_client: SimClient) -> None:
    for price in ("80000", "81000"):
        await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice=price, quantity="0.01")
    await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                          quantity="0.010", price="85000")
    done = {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert (await sim_client.delete("/fapi/v1/allOpenOrders", symbol="BTCUSDT")).json() == done
    # The regular cancel-all spares algo orders.
    assert len((await sim_client.get("/fapi/v1/openAlgoOrders")).json()) == 2
    assert (await sim_client.delete("/fapi/v1/algoOpenOrders", symbol="BTCUSDT")).json() == done
    assert (await sim_client.get("/fapi/v1/openAlgoOrders")).json() == []


async def test_conditional_order_cap_is_200(sim: Simulator, sim_client: SimClient) -> None:
    """200 open conditional orders across all symbols (change log 2025-12-29)."""
    for i in range(200):  # straight into the model: the 201st goes over the wire
        symbol, trigger = ("BTCUSDT", "80000") if i % 2 else ("ETHUSDT", "2000")
        sim.exchange.place_algo(sim.api_key, {"algoType": "CONDITIONAL", "symbol": symbol, "side": "SELL",
                                              "type": "STOP_MARKET", "triggerPrice": trigger,
                                              "quantity": "0.010"})
    response = await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice="80000", quantity="0.01")
    assert response.json() == {"code": -4045, "msg": "Reach max stop order limit."}
    first = (await sim_client.get("/fapi/v1/openAlgoOrders", symbol="ETHUSDT")).json()[0]
    await sim_client.delete("/fapi/v1/algoOrder", algoId=first["algoId"])
    response = await _algo(sim_client, side="SELL", type="STOP_MARKET", triggerPrice="80000", quantity="0.01")
    assert response.status_code == 200


async def test_min_notional_is_4164(sim_client: SimClient) -> None:
    response = await sim_client.post("/fapi/v1/order", symbol="BASUSDT", side="BUY", type="MARKET",
                                     quantity="100")
    assert response.json()["code"] == -4164


async def test_precision_errors(sim_client: SimClient) -> None:
    qty = await sim_client.post("/fapi/v1/order", symbol="BASUSDT", side="BUY", type="MARKET",
                                quantity="1000.5")
    assert qty.json()["code"] == -1111
    price = await _algo(sim_client, symbol="BASUSDT", side="SELL", type="STOP_MARKET", quantity="1000",
                        triggerPrice="0.000000001")
    assert price.json()["code"] == -4014
