"""Issue 12, "blind to one event type", against the simulator: a stream that still sends
ACCOUNT_UPDATE but drops ALGO_UPDATE or ORDER_TRADE_UPDATE is found blind by the orders REST
lists, replaced, and stays unproven (the pipeline the daemon runs, ``runtime.build``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.binance.test_adapters_sim import lost_reasons, open_position, watching
from tests.support.simulator import SimClient
from watchdog.core.events import OrdersSnapshot
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

STOP = {"path": "/fapi/v1/algoOrder", "algoType": "CONDITIONAL", "symbol": "BTCUSDT",
        "side": "SELL", "type": "STOP_MARKET", "triggerPrice": "50000", "closePosition": "true"}
LIMIT = {"path": "/fapi/v1/order", "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
         "quantity": "0.003", "price": "50000", "timeInForce": "GTC"}


async def place(sim_client: SimClient, order: dict[str, Any], client_id: str) -> int:
    params = {k: v for k, v in order.items() if k != "path"}
    id_field = "clientAlgoId" if "algoType" in order else "newClientOrderId"
    placed = await sim_client.post(order["path"], **params, **{id_field: client_id})
    assert placed.status_code == 200, placed.text
    body = placed.json()
    return int(body.get("algoId", body.get("orderId")))


def listed(events: list[Any], order_id: int) -> bool:
    return any(isinstance(e, OrdersSnapshot)
               and order_id in {*(int(o.order_id) for o in e.orders),
                                *(int(a.algo_id) for a in e.algo_orders)} for e in events)


@pytest.mark.parametrize(("dropped", "order"), [("ALGO_UPDATE", STOP),
                                                ("ORDER_TRADE_UPDATE", LIMIT)],
                         ids=["algo", "regular"])
async def test_a_stream_dropping_one_event_type_is_found_blind(
        sim: Simulator, sim_client: SimClient, dropped: str, order: dict[str, Any], redis_url: str) -> None:
    async with watching(sim, redis_url, poll_interval_s=0.9) as w:
        await open_position(w)  # its symbol's orders are read every orders_poll_interval_s
        seen = await place(sim_client, order, "reported")
        await w.until(lambda w: listed(w.events, seen), "an order the stream reported, listed")
        assert [a for a in w.alerts if a.code == "stream_blind"] == []  # no false alarm
        sim.set_faults(drop_events=[dropped])  # ACCOUNT_UPDATE and the rest still flow
        hidden = await place(sim_client, order, "unreported")
        await w.until(lambda w: any(a.code == "stream_blind" and str(hidden) in a.message
                                    for a in w.alerts), "found blind by the orders list",
                      timeout_s=20)
        await w.until(lambda w: any(r.startswith("blind") for r in lost_reasons(w)),
                      "the connection replaced")
        assert w.pipeline.vitals.proof.state == "unproven"
