"""``orphan_cancel``: the cancel on its own, without the reaper's checks around it (Binance
faked at the transport seam). The reaper's full path stays in ``test_reaper_task.py``.

docs/RULES.md rule 1 on the cancel itself: odd answers are never read as "gone" unless they
prove it, and ids beyond 2**53 reach Binance exactly."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from loguru import logger

from tests.runtime.test_reaper_task import ALGO, CHILD, Creds, algo_row, order_row
from watchdog.binance.rest import BinanceRest
from watchdog.binance.retry import RetryPolicy
from watchdog.clock import SystemClock
from watchdog.core.model import OrderId
from watchdog.runtime import reaper_task
from watchdog.runtime.orphan_cancel import Outcome, cancel_and_prove

BIG = OrderId(2**63 - 7)
HTML = b"<html><body>502 Bad Gateway</body></html>"


async def cancel_raw(replies: dict[str, tuple[int, bytes]], cancel: Any
                    ) -> tuple[Outcome, str, list[httpx.Request]]:
    """Run ``cancel_and_prove`` against canned raw answers; every request but the time sync."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        endpoint = f"{request.method} {request.url.path}"
        if endpoint == "GET /fapi/v1/time":  # the client syncs its clock first
            return httpx.Response(200, json={"serverTime": SystemClock().wall_ms()})
        seen.append(request)
        status, body = replies[endpoint]
        return httpx.Response(status, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle),
                                 base_url="http://binance.test") as http:
        rest = BinanceRest(http, Creds(), clock=SystemClock(),
                           retry_policy=RetryPolicy(max_delay_s=0.2, initial_s=0.01,
                                                    max_wait_s=0.02, jitter_s=0.0, max_attempts=1))
        outcome, detail = await cancel_and_prove(rest, cancel, logger.bind())
    return outcome, detail, seen


async def cancel_with(replies: dict[str, tuple[int, Any]], cancel: Any) -> tuple[Outcome, str, list[str]]:
    """``cancel_raw`` with JSON bodies; the endpoints called, in order."""
    raw = {endpoint: (status, json.dumps(body).encode()) for endpoint, (status, body) in replies.items()}
    outcome, detail, seen = await cancel_raw(raw, cancel)
    return outcome, detail, [f"{r.method} {r.url.path}" for r in seen]


async def test_an_acknowledged_algo_cancel_is_removed_without_a_requery() -> None:
    outcome, detail, calls = await cancel_with(
        {"DELETE /fapi/v1/algoOrder": (200, {"algoId": ALGO.order_id, "code": "200"})}, ALGO)
    assert (outcome, calls) == (Outcome.REMOVED, ["DELETE /fapi/v1/algoOrder"])
    assert detail == "DELETE /fapi/v1/algoOrder acknowledged"


async def test_minus_2011_is_gone_only_once_the_requery_shows_a_terminal_status() -> None:
    outcome, detail, calls = await cancel_with(
        {"DELETE /fapi/v1/order": (400, {"code": -2011, "msg": "Unknown order sent."}),
         "GET /fapi/v1/order": (200, order_row("CANCELED"))}, CHILD)
    assert outcome is Outcome.ALREADY_GONE
    assert calls == ["DELETE /fapi/v1/order", "GET /fapi/v1/order"]
    assert detail.endswith("re-query: CANCELED")


async def test_a_requery_still_open_is_a_failure() -> None:
    outcome, detail, _ = await cancel_with(
        {"DELETE /fapi/v1/order": (400, {"code": -2011, "msg": "Unknown order sent."}),
         "GET /fapi/v1/order": (200, order_row("NEW"))}, CHILD)
    assert outcome is Outcome.FAILED
    assert detail.endswith("still NEW")


def test_the_reaper_task_reexports_the_outcome() -> None:
    assert reaper_task.Outcome is Outcome


# ---------------------------------------------------------------- docs/RULES.md rule 1: odd answers


def js(value: object) -> bytes:
    return json.dumps(value).encode()


async def test_ids_beyond_2_53_are_sent_exactly() -> None:
    big_algo = replace(ALGO, order_id=BIG)
    _, _, seen = await cancel_raw({"DELETE /fapi/v1/algoOrder": (200, js({"algoId": BIG}))},
                                  big_algo)
    assert seen[0].url.params["algoId"] == str(2**63 - 7)
    big_child = replace(CHILD, order_id=BIG)
    _, _, seen = await cancel_raw({"DELETE /fapi/v1/order": (200, js({"orderId": BIG}))},
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
    outcome, detail, _ = await cancel_raw({"DELETE /fapi/v1/order": delete,
                                           "GET /fapi/v1/order": requery}, CHILD)
    assert outcome is expected, detail


async def test_a_requery_answering_another_order_proves_nothing() -> None:
    other = dict(order_row("CANCELED"), orderId=CHILD.order_id + 1)
    outcome, detail, _ = await cancel_raw(
        {"DELETE /fapi/v1/order": (400, js({"code": -2011, "msg": "Unknown order sent."})),
         "GET /fapi/v1/order": (200, js(other))}, CHILD)
    assert outcome is Outcome.FAILED, detail
    other_algo = dict(algo_row("CANCELED"), algoId=ALGO.order_id + 1)
    outcome, detail, _ = await cancel_raw(
        {"DELETE /fapi/v1/algoOrder": (400, js({"code": -2011, "msg": "Unknown order sent."})),
         "GET /fapi/v1/algoOrder": (200, js(other_algo))}, ALGO)
    assert outcome is Outcome.FAILED, detail
