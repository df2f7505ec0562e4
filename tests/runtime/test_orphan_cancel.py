"""``orphan_cancel``: the cancel on its own, without the reaper's checks around it (Binance
faked at the transport seam). The reaper's full path stays in ``test_reaper_task.py``."""

from __future__ import annotations

import json
from typing import Any

import httpx
from loguru import logger

from tests.runtime.test_reaper_task import ALGO, CHILD, Creds, order_row
from watchdog.binance.rest import BinanceRest
from watchdog.binance.retry import RetryPolicy
from watchdog.clock import SystemClock
from watchdog.runtime import reaper_task
from watchdog.runtime.orphan_cancel import Outcome, cancel_and_prove


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
