"""Red-team rule 1 on the cancel itself: odd answers must never be read as "gone" unless they
prove it, and ids beyond 2**53 reach Binance exactly. Binance faked at the transport seam."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.runtime.test_orphan_cancel import cancel_raw
from tests.runtime.test_reaper_task import ALGO, CHILD, algo_row, order_row
from watchdog.core.model import OrderId
from watchdog.runtime.orphan_cancel import Outcome

BIG = OrderId(2**63 - 7)
HTML = b"<html><body>502 Bad Gateway</body></html>"


cancel_with = cancel_raw


def js(value: object) -> bytes:
    import json
    return json.dumps(value).encode()


async def test_ids_beyond_2_53_are_sent_exactly() -> None:
    big_algo = replace(ALGO, order_id=BIG)
    _, _, seen = await cancel_with({"DELETE /fapi/v1/algoOrder": (200, js({"algoId": BIG}))},
                                   big_algo)
    assert seen[0].url.params["algoId"] == str(2**63 - 7)
    big_child = replace(CHILD, order_id=BIG)
    _, _, seen = await cancel_with({"DELETE /fapi/v1/order": (200, js({"orderId": BIG}))},
                                   big_child)
    assert seen[0].url.params["orderId"] == str(2**63 - 7)


@pytest.mark.parametrize(("delete", "requery", "expected"), [
    ((502, HTML), (200, js(order_row("CANCELED"))), Outcome.REMOVED),     # proven by re-query
    ((502, HTML), (502, HTML), Outcome.FAILED),                           # nothing proven
    ((200, HTML), (200, js(order_row("NEW"))), Outcome.FAILED),           # HTML "200": re-query
    ((200, b""), (200, js(order_row("NEW"))), Outcome.FAILED),
    ((400, js({"code": -2011, "msg": "Unknown order sent."})), (200, b""), Outcome.FAILED),
    ((400, js({"code": -2011, "msg": "Unknown order sent."})), (200, js({})), Outcome.FAILED),
    ((400, js({"code": -2011, "msg": "Unknown order sent."})),
     (200, js([order_row("CANCELED")])), Outcome.FAILED),                 # a list, not a row
])
async def test_odd_answers_are_not_gone_unless_proven(
        delete: tuple[int, bytes], requery: tuple[int, bytes], expected: Outcome) -> None:
    outcome, detail, _ = await cancel_with({"DELETE /fapi/v1/order": delete,
                                            "GET /fapi/v1/order": requery}, CHILD)
    assert outcome is expected, detail


async def test_a_requery_answering_another_order_proves_nothing() -> None:
    other = dict(order_row("CANCELED"), orderId=CHILD.order_id + 1)
    outcome, detail, _ = await cancel_with(
        {"DELETE /fapi/v1/order": (400, js({"code": -2011, "msg": "Unknown order sent."})),
         "GET /fapi/v1/order": (200, js(other))}, CHILD)
    assert outcome is Outcome.FAILED, detail
    other_algo = dict(algo_row("CANCELED"), algoId=ALGO.order_id + 1)
    outcome, detail, _ = await cancel_with(
        {"DELETE /fapi/v1/algoOrder": (400, js({"code": -2011, "msg": "Unknown order sent."})),
         "GET /fapi/v1/algoOrder": (200, js(other_algo))}, ALGO)
    assert outcome is Outcome.FAILED, detail
