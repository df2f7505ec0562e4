"""Pure adapter decisions: backoff, dedupe, stream errors, budget, poll schedule."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from watchdog.binance.connection import classify_stream_error, user_stream_url
from watchdog.binance.poller import PollSchedule
from watchdog.binance.protocol.budget import Priority, WeightBudget
from watchdog.binance.protocol.classify import classify_response, parse_retry_after_s
from watchdog.binance.protocol.reconnect import (
    _ORDER_KEYS,
    Backoff,
    RecentEvents,
    StreamFailure,
    event_identity,
)
from watchdog.binance.protocol.wire import USER_EVENT_TYPES
from watchdog.core.events import PositionAmount, PositionSnapshot
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.errors import (
    AuthenticationFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    OutcomeUnknown,
)

# ---------------------------------------------------------------- backoff

def test_backoff_is_bounded_jittered_and_resets() -> None:
    b = Backoff(0.5, 8.0, random.Random(1))
    delays = [b.next_delay_s() for _ in range(12)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert delays[0] <= 0.5 * 1.0 + 1e-9 or delays[0] == 0.5
    assert max(delays[6:]) <= 8.0
    assert min(delays[6:]) >= 4.0
    assert len(set(delays[6:])) > 1  # jittered
    b.reset()
    assert b.next_delay_s() == pytest.approx(0.5)


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="min_delay_s"):
        Backoff(2.0, 1.0, random.Random())


# ---------------------------------------------------------------- dedupe

OTU = {"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1,
       "o": {"i": 5, "x": "TRADE", "X": "PARTIALLY_FILLED", "t": 9, "z": "1", "l": "1"}}


def test_event_identity_separates_fills_and_matches_copies() -> None:
    second_fill = {**OTU, "o": {**OTU["o"], "t": 10, "z": "2"}}
    assert event_identity(OTU) == event_identity(dict(OTU))
    assert event_identity(OTU) != event_identity(second_fill)
    algo = {"e": "ALGO_UPDATE", "E": 1, "T": 1, "o": {"aid": 3, "X": "NEW"}}
    assert event_identity(algo) != event_identity({**algo, "o": {"aid": 3, "X": "CANCELED"}})
    au = {"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "ORDER", "P": []}}
    assert event_identity(au) == event_identity({"T": 1, "E": 1, "e": "ACCOUNT_UPDATE",
                                                 "a": {"P": [], "m": "ORDER"}})


def test_recent_events_drops_duplicates_and_forgets_old_ones() -> None:
    recent = RecentEvents(capacity=2)
    assert recent.first_time("a")
    assert recent.first_time("b")
    assert not recent.first_time("a")
    assert recent.first_time("c")
    assert recent.first_time("a")  # forgotten after capacity


# ---------------------------------------------------------------- stream error classification

def _invalid_status(status: int) -> InvalidStatus:
    return InvalidStatus(Response(status, "x", Headers()))


@pytest.mark.parametrize(("exc", "expected"), [
    (_invalid_status(503), StreamFailure.RETRY),
    (_invalid_status(400), StreamFailure.NEW_KEY),
    (_invalid_status(404), StreamFailure.NEW_KEY),
    (ConnectionRefusedError(), StreamFailure.RETRY),
    (TimeoutError(), StreamFailure.RETRY),
    (ConnectionClosedError(Close(1011, "keepalive ping timeout"), None), StreamFailure.RETRY),
    (ExchangeUnavailable("x"), StreamFailure.RETRY),
    (OutcomeUnknown("x"), StreamFailure.RETRY),
    (ExchangeRejected(-1125, "This listenKey does not exist.", "PUT /fapi/v1/listenKey"),
     StreamFailure.NEW_KEY),
    # The daemon decides what a refused key means (exit 77 before ready, degraded after).
    (AuthenticationFailed(-2015, "Invalid API-key", "POST /fapi/v1/listenKey"),
     StreamFailure.RETRY),
    (RuntimeError("bug"), StreamFailure.FATAL),
])
def test_classify_stream_error(exc: BaseException, expected: StreamFailure) -> None:
    assert classify_stream_error(exc) is expected


def test_stream_url_is_routed_with_explicit_events() -> None:
    url = user_stream_url("wss://fstream.binance.com/", "K+/=")
    assert url.startswith("wss://fstream.binance.com/private/ws?listenKey=K%2B%2F%3D&events=")
    assert url.endswith("/".join(USER_EVENT_TYPES))
    assert "ALGO_UPDATE" in USER_EVENT_TYPES
    assert "listenKeyExpired" in USER_EVENT_TYPES


# ---------------------------------------------------------------- response classification

def test_classify_success_and_retry_after_parsing() -> None:
    assert classify_response(200, b"[]", "GET /x") is None
    assert parse_retry_after_s("12") == 12
    assert parse_retry_after_s("soon") is None
    assert parse_retry_after_s(None) is None
    err = classify_response(429, b'{"code":-1003,"msg":"Too many"}', "GET /x")
    assert isinstance(err, ExchangeUnavailable)
    assert err.retry_after_s == 5.0
    ban = classify_response(418, b"{}", "GET /x", retry_after="300")
    assert isinstance(ban, ExchangeUnavailable)
    assert ban.retry_after_s == 300
    waf = classify_response(403, b"<html>forbidden</html>", "GET /x")
    assert isinstance(waf, ExchangeRejected)
    assert waf.code == 0
    assert "forbidden" in waf.msg


# ---------------------------------------------------------------- weight budget

def test_budget_leaves_the_ip_to_the_bot_near_its_limit() -> None:
    b = WeightBudget(360)
    b.observe_used_weight(2200, 0.0)
    assert b.wait_for_s(5, now_s=1.0) > 0
    assert b.wait_for_s(5, priority=Priority.REQUESTED, now_s=1.0) == 0
    assert b.ip_used_1m(61.0) == 0


# ---------------------------------------------------------------- poll schedule

def snap(*rows: tuple[str, str]) -> PositionSnapshot:
    return PositionSnapshot(1, 0, 0, tuple(
        PositionAmount(PositionKey(Symbol(s), PositionSide.BOTH), Decimal(a), Decimal(1), 0)
        for s, a in rows))


def test_schedule_positions_every_interval_and_at_once_on_request() -> None:
    s = PollSchedule(poll_interval_s=1.0, orders_poll_interval_s=10.0, fast_poll_interval_s=0.25)
    assert s.plan(0.0).read_positions
    assert s.positions_started(0.0) == "scheduled"
    plan = s.plan(0.5)
    assert not plan.read_positions
    assert plan.wake_in_s == pytest.approx(0.5)
    s.snapshot_requested("stream gap", None)
    plan = s.plan(0.6)
    assert plan.read_positions
    assert plan.positions_urgent
    assert plan.wake_in_s == 0
    assert s.positions_started(0.6) == "stream gap"
    assert not s.plan(0.7).read_positions
    # Requests right after a read wait for fast_poll_interval_s (the core may ask repeatedly).
    s.snapshot_requested("fill on BTCUSDT", None)
    plan = s.plan(0.7)
    assert not plan.read_positions
    assert plan.wake_in_s == pytest.approx(0.15)
    assert s.plan(0.85).read_positions


def test_schedule_orders_for_open_recently_closed_leased_and_active_symbols() -> None:
    s = PollSchedule(poll_interval_s=1.0, orders_poll_interval_s=10.0, fast_poll_interval_s=2.0,
                     recent_window_s=60.0)
    s.positions_started(0.0)
    s.positions_seen(snap(("BTCUSDT", "1"), ("ETHUSDT", "0")), 0.0)
    assert s.plan(0.0).order_symbols == ("BTCUSDT",)
    s.orders_read(Symbol("BTCUSDT"), 0.0)
    assert s.plan(5.0).order_symbols == ()
    assert s.plan(5.0, leased={"SOLUSDT"}).order_symbols == ("SOLUSDT",)
    s.orders_read(Symbol("SOLUSDT"), 5.0)
    assert s.plan(6.0, leased={"SOLUSDT"}).order_symbols == ()
    assert s.plan(7.0, leased={"SOLUSDT"}).order_symbols == ("SOLUSDT",)  # fast while leased
    s.activity(Symbol("BTCUSDT"), 8.0)
    assert "BTCUSDT" in s.plan(8.0).order_symbols  # fast right after an event (8 - 0 >= 2)
    s.orders_read(Symbol("BTCUSDT"), 8.0)
    s.positions_seen(snap(), 9.0)  # BTC closed
    assert "BTCUSDT" in s.plan(18.0).order_symbols  # still watched: closed recently
    s.orders_read(Symbol("BTCUSDT"), 18.0)
    assert "BTCUSDT" not in s.plan(80.0).order_symbols  # forgotten after the window


_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=4), st.booleans(),
                    st.floats(allow_nan=False))


@settings(deadline=None)  # no timed assertions: a busy machine is no failure
@given(order=st.dictionaries(st.sampled_from(["i", "x", "X", "t", "z", "l", "s", "c"]), _VALUES),
       big_e=st.integers(0, 2**45), big_t=st.integers(0, 2**45))
def test_the_order_identity_spelled_out_is_the_one_of_its_key_list(order: dict, big_e: int,
                                                                   big_t: int) -> None:
    """event_identity names the six ORDER_TRADE_UPDATE fields one by one (no generator per
    frame): the same identity as over ``_ORDER_KEYS``, missing fields included."""
    raw = {"e": "ORDER_TRADE_UPDATE", "E": big_e, "T": big_t, "o": order}
    assert event_identity(raw, "text") == ("ORDER_TRADE_UPDATE", big_e, big_t,
                                           *(str(order.get(k)) for k in _ORDER_KEYS))
