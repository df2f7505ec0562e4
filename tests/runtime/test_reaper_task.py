"""ReaperTask.reap: routing, re-queries, budget, dry run, Redis marks (real Redis, fake Binance).

Binance is faked at the transport seam (``httpx.MockTransport``); the store is a
real ``RedisPublisher`` on the session's redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from tests.core.reaper_support import StubPositions, algo_update, listed_book
from tests.support.waiting import eventually
from watchdog.binance.rest import BinanceRest
from watchdog.binance.retry import RetryPolicy
from watchdog.clock import SystemClock
from watchdog.config import ReaperConfig
from watchdog.core.effects import CancelOrder
from watchdog.core.events import Event
from watchdog.core.model import AlgoStatus, OrderId, PositionKey, PositionSide, Symbol
from watchdog.core.orders import OrderBook
from watchdog.errors import AuthenticationFailed
from watchdog.runtime.reaper_task import Outcome, ReaperTask
from watchdog.store.publisher import RedisPublisher

BAS = Symbol("BASUSDT")
KEY = PositionKey(BAS, PositionSide.BOTH)
ALGO = CancelOrder(KEY, OrderId(4000001783523430), True, "bot-sl", "test")
CHILD = CancelOrder(KEY, OrderId(88937381063), False, "bot-sl", "test")
UNKNOWN_503 = (503, {"code": -1000, "msg": "Unknown error, please check your request or try again later."})


@dataclass(frozen=True)
class Creds:
    api_key: str = "k"
    api_secret: str = field(default="s", repr=False)


def algo_row(status: str) -> dict[str, Any]:
    return {"algoId": ALGO.order_id, "clientAlgoId": "bot-sl", "algoType": "CONDITIONAL",
            "orderType": "STOP_MARKET", "symbol": BAS, "side": "SELL", "positionSide": "BOTH",
            "timeInForce": "GTC", "quantity": "1216", "algoStatus": status, "actualOrderId": "",
            "triggerPrice": "0.0077", "price": "0", "closePosition": False, "reduceOnly": True,
            "createTime": 1, "updateTime": 2, "triggerTime": 0}


def order_row(status: str) -> dict[str, Any]:
    return {"orderId": CHILD.order_id, "clientOrderId": "bot-sl", "symbol": BAS, "side": "SELL",
            "positionSide": "BOTH", "type": "LIMIT", "origType": "STOP", "status": status,
            "reduceOnly": True, "closePosition": False, "stopPrice": "0.0077", "origQty": "1216",
            "time": 1, "updateTime": 2}


Reply = tuple[int, Any]


class FakeBinance:
    """Scripted answers per ``METHOD /path``; records every request (path and parameters)."""

    def __init__(self, store: RedisPublisher) -> None:
        self.store = store
        self.script: dict[str, list[Reply]] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.reaping_during_cancel: list[bool] = []
        self.positions: list[dict[str, Any]] = []
        # The order read before the cancel (the restore recipe): NEW unless a test says else.
        self.recipes: dict[str, Reply] = {"GET /fapi/v1/algoOrder": (200, algo_row("NEW")),
                                          "GET /fapi/v1/order": (200, order_row("NEW"))}

    def on(self, endpoint: str, *replies: Reply) -> None:
        self.script[endpoint] = list(replies)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        endpoint = f"{request.method} {request.url.path}"
        params = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        self.calls.append((endpoint, params))
        if endpoint == "GET /fapi/v1/time":
            return httpx.Response(200, json={"serverTime": SystemClock().wall_ms()})
        if endpoint == "GET /fapi/v3/positionRisk" and endpoint not in self.script:
            return httpx.Response(200, json=self.positions)
        requery = len(self.calls) > 1 and self.calls[-2][0].startswith("DELETE")
        if endpoint in self.recipes and not requery:  # the re-query follows its DELETE
            status, body = self.recipes[endpoint]
            return httpx.Response(status, content=json.dumps(body).encode())
        if request.method == "DELETE":
            marked = await self.store._redis.exists(self.store.keys.reaping(KEY))
            self.reaping_during_cancel.append(bool(marked))
        replies = self.script.get(endpoint)
        if not replies:
            raise AssertionError(f"unexpected request {endpoint} {params}")
        status, body = replies.pop(0) if len(replies) > 1 else replies[0]
        return httpx.Response(status, content=json.dumps(body).encode())

    def sent(self, endpoint: str) -> list[dict[str, str]]:
        return [p for e, p in self.calls if e == endpoint]


Make = Callable[..., Awaitable[tuple[ReaperTask, FakeBinance, list[Event]]]]


@pytest.fixture
async def make(publisher: RedisPublisher) -> Any:
    clients: list[httpx.AsyncClient] = []

    async def build(max_rest_lag_ms: int = 0,
                    **settings: Any) -> tuple[ReaperTask, FakeBinance, list[Event]]:
        fake = FakeBinance(publisher)
        http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle),
                                 base_url="http://binance.test")
        clients.append(http)
        rest = BinanceRest(http, Creds(), clock=SystemClock(),
                           retry_policy=RetryPolicy(max_delay_s=0.2, initial_s=0.01,
                                                    max_wait_s=0.02, jitter_s=0.0,
                                                    max_attempts=2))
        events: list[Event] = []

        async def emit(event: Event) -> None:
            events.append(event)

        return ReaperTask(rest, publisher, emit, SystemClock(), ReaperConfig(**settings),
                          max_rest_lag_ms=max_rest_lag_ms), fake, events

    yield build
    for http in clients:
        await http.aclose()


async def kinds(publisher: RedisPublisher) -> list[str]:
    entries: list[tuple[str, dict[str, str]]] = await publisher._redis.xrange(  # type: ignore[assignment]
        publisher.keys.events)
    return [fields["kind"] for _, fields in entries]


async def test_algo_is_cancelled_on_the_algo_endpoint_with_the_position_marked(
        make: Make, publisher: RedisPublisher) -> None:
    task, fake, events = await make()
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.REMOVED
    assert fake.sent("DELETE /fapi/v1/algoOrder")[0]["algoId"] == str(ALGO.order_id)
    assert fake.sent("DELETE /fapi/v1/order") == []
    assert fake.reaping_during_cancel == [True]
    assert not await publisher._redis.exists(publisher.keys.reaping(KEY))
    assert await kinds(publisher) == ["orphan_removed", "trailing_stop_orphaned"]
    # the pre-cancel re-read and the post-cancel check (rule 7), both bracketed for the core
    assert [type(e).__name__ for e in events] == ["SnapshotRequested", "PositionSnapshot"] * 2


async def test_child_order_is_cancelled_on_the_order_endpoint(make: Make) -> None:
    task, fake, _ = await make()
    fake.on("DELETE /fapi/v1/order", (200, order_row("CANCELED")))
    result = await task.reap(CHILD)
    assert result.outcome is Outcome.REMOVED
    sent = fake.sent("DELETE /fapi/v1/order")[0]
    assert sent["symbol"] == BAS
    assert sent["orderId"] == str(CHILD.order_id)
    assert fake.sent("DELETE /fapi/v1/algoOrder") == []


@pytest.mark.parametrize(("status", "outcome", "events"), [
    ("CANCELED", Outcome.ALREADY_GONE, ["orphan_removed", "trailing_stop_orphaned"]),
    ("TRIGGERED", Outcome.FAILED, []),
    ("NEW", Outcome.FAILED, []),
])
async def test_unknown_order_is_requeried_before_calling_it_gone(
        make: Make, publisher: RedisPublisher, status: str, outcome: Outcome,
        events: list[str]) -> None:
    task, fake, _ = await make()
    fake.on("DELETE /fapi/v1/algoOrder", (400, {"code": -2011, "msg": "Unknown order sent."}))
    fake.on("GET /fapi/v1/algoOrder", (200, algo_row(status)))
    result = await task.reap(ALGO)
    assert result.outcome is outcome
    assert status in result.detail
    assert len(fake.sent("GET /fapi/v1/algoOrder")) == 2  # the recipe before the cancel, the re-query after
    assert await kinds(publisher) == events


async def test_order_that_no_longer_exists_is_gone(make: Make) -> None:
    task, fake, _ = await make()
    fake.on("DELETE /fapi/v1/order", (400, {"code": -2011, "msg": "Unknown order sent."}))
    fake.on("GET /fapi/v1/order", (400, {"code": -2013, "msg": "Order does not exist."}))
    result = await task.reap(CHILD)
    assert result.outcome is Outcome.ALREADY_GONE


@pytest.mark.parametrize(("requery", "outcome"), [
    ((200, algo_row("CANCELED")), Outcome.REMOVED),
    ((200, algo_row("NEW")), Outcome.FAILED),
    (UNKNOWN_503, Outcome.FAILED),
])
async def test_outcome_unknown_is_requeried(make: Make, requery: Reply, outcome: Outcome) -> None:
    task, fake, _ = await make()
    fake.on("DELETE /fapi/v1/algoOrder", UNKNOWN_503)
    fake.on("GET /fapi/v1/algoOrder", requery)
    result = await task.reap(ALGO)
    assert result.outcome is outcome
    assert len(fake.sent("DELETE /fapi/v1/algoOrder")) == 1  # a mutation is never resent


async def test_position_reopened_before_the_cancel_aborts_it(
        make: Make, publisher: RedisPublisher) -> None:
    task, fake, _ = await make()
    fake.positions = [{"symbol": BAS, "positionSide": "BOTH", "positionAmt": "1216",
                       "entryPrice": "0.0083", "updateTime": 5}]
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.ABORTED
    assert "reopened" in result.detail
    assert fake.sent("DELETE /fapi/v1/algoOrder") == []
    assert await kinds(publisher) == []
    assert not await publisher._redis.exists(publisher.keys.reaping(KEY))


async def test_failed_reread_aborts(make: Make) -> None:
    task, fake, events = await make()
    fake.on("GET /fapi/v3/positionRisk", (503, {"code": -1001, "msg": "Service Unavailable."}))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.ABORTED
    assert fake.sent("DELETE /fapi/v1/algoOrder") == []
    assert type(events[-1]).__name__ == "SnapshotFailed"  # the core hears of it: grace resets


async def test_budget_caps_cancel_requests(make: Make) -> None:
    task, fake, _ = await make(max_cancels_per_min=1)
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    fake.on("DELETE /fapi/v1/order", (200, order_row("CANCELED")))
    assert (await task.reap(ALGO)).outcome is Outcome.REMOVED
    second = await task.reap(CHILD)
    assert second.outcome is Outcome.ABORTED
    assert "budget" in second.detail
    assert fake.sent("DELETE /fapi/v1/order") == []


async def test_dry_run_sends_no_cancel(make: Make, publisher: RedisPublisher) -> None:
    task, fake, _ = await make(dry_run=True)
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.WOULD_REMOVE
    assert [e for e, _ in fake.calls if e.startswith("DELETE")] == []
    assert await kinds(publisher) == ["orphan_candidate"]


async def test_rejected_api_key_propagates(make: Make, publisher: RedisPublisher) -> None:
    task, fake, _ = await make()
    fake.on("DELETE /fapi/v1/algoOrder", (401, {"code": -2015, "msg": "Invalid API-key"}))
    with pytest.raises(AuthenticationFailed):
        await task.reap(ALGO)
    assert not await publisher._redis.exists(publisher.keys.reaping(KEY))


# ---------------------------------------------------------------- step (in the core loop)


def stuck_book() -> tuple[StubPositions, OrderBook]:
    positions = StubPositions().set_flat(KEY, 1_000)
    orders = listed_book()
    orders.apply(algo_update(1, AlgoStatus.TRIGGERING, at_ms=2_000))
    orders.apply(algo_update(2, AlgoStatus.NEW, at_ms=2_000))
    return positions, orders


async def test_step_waits_for_leases_then_decides_and_deduplicates(make: Make) -> None:
    task, _, _ = await make(stuck_triggering_s=0.001, grace_ms=0)
    positions, orders = stuck_book()
    assert task.step(positions, orders, 0) == []  # leases not read yet: nothing may be cancelled
    await task.refresh_leases()
    effects = task.step(positions, orders, 0)
    assert [type(e).__name__ for e in effects] == ["RaiseAlert", "CancelOrder"]
    cancel = effects[1]
    assert isinstance(cancel, CancelOrder)
    task.submit(cancel)
    task.submit(cancel)  # queued once
    again = task.step(positions, orders, 0)
    assert again == []  # alert not repeated within a minute; the cancel is already queued
    assert task.budget_used() == 1


async def test_disabled_reaper_decides_nothing(make: Make) -> None:
    task, _, _ = await make(enabled=False)
    await task.refresh_leases()
    assert task.step(*stuck_book(), 0) == []


async def test_step_asks_rest_to_confirm_a_stream_only_flat_at_most_once_a_second(
        make: Make) -> None:
    task, _, _ = await make()
    await task.refresh_leases()
    positions = StubPositions(views={KEY: StubPositions().set_flat(KEY, 0).views[KEY]})
    orders = listed_book()
    orders.apply(algo_update(2, AlgoStatus.NEW, at_ms=2_000))
    first = task.step(positions, orders, 0)
    assert [type(e).__name__ for e in first] == ["RequestSnapshot"]
    assert task.step(positions, orders, 0) == []


# ---------------------------------------------------------------- the race (rule 7)

OPEN_ROW = {"symbol": BAS, "positionSide": "BOTH", "positionAmt": "1216", "entryPrice": "0.0083",
            "updateTime": 5}


async def events_of(publisher: RedisPublisher, kind: str) -> list[dict[str, str]]:
    entries: list[tuple[str, dict[str, str]]] = await publisher._redis.xrange(  # type: ignore[assignment]
        publisher.keys.events)
    return [fields for _, fields in entries if fields["kind"] == kind]


async def test_position_opened_during_the_cancel_gets_an_equivalent_order_at_once(
        make: Make, publisher: RedisPublisher) -> None:
    task, fake, _ = await make()
    fake.on("GET /fapi/v3/positionRisk", (200, []), (200, [OPEN_ROW]))  # flat, then open
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    fake.on("POST /fapi/v1/algoOrder", (200, {**algo_row("NEW"), "algoId": 4000001783529999,
                                              "clientAlgoId": "wd-rs-4000001783523430"}))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.RESTORED, result
    assert result.new_order_id == 4000001783529999
    placed = fake.sent("POST /fapi/v1/algoOrder")[0]
    assert {k: placed[k] for k in ("algoType", "symbol", "side", "type", "positionSide",
                                   "triggerPrice", "quantity", "reduceOnly", "timeInForce")} == {
        "algoType": "CONDITIONAL", "symbol": BAS, "side": "SELL", "type": "STOP_MARKET",
        "positionSide": "BOTH", "triggerPrice": "0.0077", "quantity": "1216",
        "reduceOnly": "true", "timeInForce": "GTC"}
    assert placed["clientAlgoId"] == "wd-rs-4000001783523430"
    assert "closePosition" not in placed
    assert await kinds(publisher) == ["protection_restored"]  # never trailing_stop_orphaned
    event = (await events_of(publisher, "protection_restored"))[0]
    assert {k: event[k] for k in ("position", "symbol", "side", "position_side", "order_id",
                                  "client_id", "new_order_id", "new_client_id", "order_side",
                                  "order_type", "outcome")} == {
        "position": "BASUSDT:BOTH", "symbol": BAS, "side": "BOTH", "position_side": "BOTH",
        "order_id": str(ALGO.order_id), "client_id": "bot-sl",
        "new_order_id": "4000001783529999", "new_client_id": "wd-rs-4000001783523430",
        "order_side": "SELL", "order_type": "STOP_MARKET", "outcome": "restored"}
    assert int(event["unprotected_ms"]) >= 0


async def test_a_restore_that_fails_raises_an_alert(make: Make, publisher: RedisPublisher) -> None:
    task, fake, _ = await make()
    fake.on("GET /fapi/v3/positionRisk", (200, []), (200, [OPEN_ROW]))
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    fake.on("POST /fapi/v1/algoOrder", (400, {"code": -4045, "msg": "Reach max stop order limit."}))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.UNPROTECTED
    alerts = await events_of(publisher, "alert")
    assert [a["code"] for a in alerts] == ["protection_not_restored"]
    assert alerts[0]["order_id"] == str(ALGO.order_id)
    assert await kinds(publisher) == ["alert"]


async def test_a_failed_post_cancel_read_restores_the_order(make: Make) -> None:
    """Flatness after the cancel is unproven: put the stop back rather than risk it."""
    task, fake, _ = await make()
    fake.on("GET /fapi/v3/positionRisk", (200, []), (503, {"code": -1001, "msg": "x"}))
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    fake.on("POST /fapi/v1/algoOrder", (200, {**algo_row("NEW"), "algoId": 7}))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.RESTORED
    assert "post-cancel read failed" in result.detail


async def test_reopened_the_other_way_is_not_restored_and_not_trailing_orphaned(
        make: Make, publisher: RedisPublisher) -> None:
    """A SELL stop cannot protect a short: nothing to put back, but the symbol's position
    reopened, so no trailing_stop_orphaned."""
    task, fake, _ = await make()
    short = {**OPEN_ROW, "positionAmt": "-1216"}
    fake.on("GET /fapi/v3/positionRisk", (200, []), (200, [short]))
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.REMOVED
    assert fake.sent("POST /fapi/v1/algoOrder") == []
    assert await kinds(publisher) == ["orphan_removed"]
    assert (await events_of(publisher, "orphan_removed"))[0]["position_reopened"] == "1"


async def test_an_order_in_a_trigger_at_the_last_read_is_not_cancelled(make: Make) -> None:
    task, fake, _ = await make()
    fake.recipes["GET /fapi/v1/algoOrder"] = (200, algo_row("TRIGGERING"))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.ABORTED
    assert fake.sent("DELETE /fapi/v1/algoOrder") == []


async def test_open_shown_by_an_early_read_is_restored_before_the_lag_bound(
        make: Make) -> None:
    """Rule 7: chaos rest_lag_beyond_grace_entry_muted (3 s real lag, 3.5 s bound, stream
    muted): the entry filled just after the pre-cancel read's horizon. A REST read while the
    bound is waited out already shows the open (the real lag is shorter than the bound): the
    order is restored then, not only after the last read ``max_rest_lag_ms`` later."""
    task, fake, _ = await make(max_rest_lag_ms=3500)
    fake.on("GET /fapi/v3/positionRisk", (200, []), (200, [OPEN_ROW]))  # flat, then open
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    fake.on("POST /fapi/v1/algoOrder", (200, {**algo_row("NEW"), "algoId": 4000001783529999,
                                              "clientAlgoId": "wd-rs-4000001783523430"}))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.RESTORED, result
    assert "(early)" in result.detail
    # the pre-cancel read and one early read: the restore did not wait for the bound's read
    assert len(fake.sent("GET /fapi/v3/positionRisk")) == 2


async def test_post_cancel_check_waits_out_the_rest_lag(make: Make) -> None:
    """The post-cancel read is requested max_rest_lag_ms after the cancel's answer, so what it
    shows cannot predate the cancel."""
    task, fake, events = await make(max_rest_lag_ms=300)
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    result = await task.reap(ALGO)
    assert result.outcome is Outcome.REMOVED
    requested = [e.requested_time_ms for e in events if type(e).__name__ == "SnapshotRequested"]
    assert len(requested) == 2
    assert requested[1] - requested[0] >= 300


# ---------------------------------------------------------------- one position, several orphans


async def test_orphans_of_one_position_are_cancelled_back_to_back_with_one_read_each_side(
        make: Make, publisher: RedisPublisher) -> None:
    """Rule 9: two orphans of one position share the pre-cancel read and the post-cancel read
    (requested ``max_rest_lag_ms`` after the last cancel): the second is not held up by the
    first one's wait for the REST lag."""
    task, fake, events = await make(max_rest_lag_ms=300)
    second = CancelOrder(KEY, OrderId(ALGO.order_id + 1), True, "bot-sl-2", "test")
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    task.submit(ALGO)
    task.submit(second)
    runner = asyncio.create_task(task.run())
    try:
        await eventually(lambda: asyncio.sleep(0, len(task.results)), lambda n: n == 2,
                         what="both orphans handled")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert [r.outcome for r in task.results] == [Outcome.REMOVED, Outcome.REMOVED]
    order = [e for e, _ in fake.calls if e in ("GET /fapi/v3/positionRisk",
                                               "DELETE /fapi/v1/algoOrder")]
    assert order == ["GET /fapi/v3/positionRisk", "DELETE /fapi/v1/algoOrder",
                     "DELETE /fapi/v1/algoOrder", "GET /fapi/v3/positionRisk"]
    assert [type(e).__name__ for e in events] == ["SnapshotRequested", "PositionSnapshot"] * 2
    assert (await kinds(publisher)).count("trailing_stop_orphaned") == 2


# ---------------------------------------------------------------- the proving read (rule 8)


def proof_book(now_ms: int, remaining_ms: int) -> tuple[StubPositions, OrderBook]:
    """A stop on a position flat by REST whose grace a read requested ``remaining_ms`` from
    ``now_ms`` proves over (grace 2000 + lag 2000 after ``flat_since``); the newest read of the
    run is 500 ms old, too early to prove it."""
    positions = StubPositions().set_flat(KEY, now_ms + remaining_ms - 4_000)
    positions.proven[KEY] = now_ms - 500
    orders = listed_book()
    orders.apply(algo_update(ALGO.order_id, AlgoStatus.NEW, at_ms=1_000))
    return positions, orders


@pytest.mark.parametrize(("remaining_ms", "queued"), [(0, True), (250, True), (600, False)])
async def test_an_order_a_read_due_soon_proves_is_queued_with_that_read_due(
        make: Make, remaining_ms: int, queued: bool) -> None:
    """Not a RequestSnapshot for the poller and another read before the cancel: the pre-cancel
    read, requested when it can prove the grace over, is the proving read."""
    task, _, _ = await make(max_rest_lag_ms=2000)
    await task.refresh_leases()
    now_ms = task._exchange.exchange_time_ms()
    effects = task.step(*proof_book(now_ms, remaining_ms), now_ms)
    cancels = [e for e in effects if isinstance(e, CancelOrder)]
    assert [c.order_id for c in cancels] == ([ALGO.order_id] if queued else [])
    if queued:
        assert [e for e in effects if not isinstance(e, CancelOrder)] == []


async def test_the_proving_read_removes_the_order_once_due(make: Make) -> None:
    task, fake, events = await make(max_rest_lag_ms=2000)
    fake.on("DELETE /fapi/v1/algoOrder", (200, {"algoId": ALGO.order_id, "code": "200"}))
    await task.refresh_leases()
    now_ms = task._exchange.exchange_time_ms()
    for effect in task.step(*proof_book(now_ms, 200), now_ms):
        if isinstance(effect, CancelOrder):
            task.submit(effect)
    runner = asyncio.create_task(task.run())
    try:
        await eventually(lambda: asyncio.sleep(0, len(task.results)), lambda n: n == 1,
                         what="the orphan handled", timeout_s=10)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert task.results[0].outcome is Outcome.REMOVED
    read = next(e for e in events if type(e).__name__ == "PositionSnapshot")
    assert read.requested_time_ms >= now_ms + 200  # type: ignore[attr-defined]
    # the proving read, two early post-cancel reads (0.5 s, 1 s: rule 7), the post-cancel read
    assert len(fake.sent("GET /fapi/v3/positionRisk")) == 4


async def test_a_read_requested_before_it_can_prove_the_grace_cancels_nothing(
        make: Make) -> None:
    """Safety: the pre-cancel read of a rule-8 order sent early (here: at once, not at its due
    time) proves flatness only as of its request time less the lag: the cancel is aborted."""
    task, fake, _ = await make(max_rest_lag_ms=2000)
    await task.refresh_leases()
    now_ms = task._exchange.exchange_time_ms()
    effects = task.step(*proof_book(now_ms, 250), now_ms)
    cancel = next(e for e in effects if isinstance(e, CancelOrder))
    result = await task.reap(cancel)
    assert result.outcome is Outcome.ABORTED
    assert "not_flat_long_enough" in result.detail
    assert fake.sent("DELETE /fapi/v1/algoOrder") == []
