"""Request signing against Binance's documented HMAC examples (pure, no sockets)."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest

from watchdog.binance.protocol.signing import ParamValue, build_query, build_signed_query, sign_query

pytestmark = pytest.mark.usefixtures("socket_disabled")

# USDⓈ-M futures General Info, "SIGNED Endpoint Examples for POST /fapi/v1/order - HMAC Keys".
FUTURES_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
FUTURES_QUERY = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
                 "&recvWindow=5000&timestamp=1591702613943")
FUTURES_SIGNATURE = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
# Example 3 of the same page: query string and body concatenated with no "&" between them
# (the page's text has a space after "timestamp=", and its published signature covers it).
MIXED_TOTAL_PARAMS = ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
                      "quantity=1&price=9000&recvWindow=5000&timestamp= 1591702613943")
MIXED_SIGNATURE = "f9d0ae5e813ef6ccf15c2b5a434047a0181cb5a342b903b367ca6d27a66e36f2"
# Spot API docs example (same algorithm), widely used as a test vector.
SPOT_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SPOT_QUERY = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
              "&recvWindow=5000&timestamp=1499827319559")
SPOT_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_documented_futures_example() -> None:
    assert sign_query(FUTURES_QUERY, FUTURES_SECRET) == FUTURES_SIGNATURE


def test_documented_mixed_query_and_body_example() -> None:
    assert sign_query(MIXED_TOTAL_PARAMS, FUTURES_SECRET) == MIXED_SIGNATURE


def test_documented_spot_example() -> None:
    assert sign_query(SPOT_QUERY, SPOT_SECRET) == SPOT_SIGNATURE


def test_build_signed_query_reproduces_the_documented_request() -> None:
    params: dict[str, ParamValue] = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": 1,
                                     "price": Decimal("9000"), "timeInForce": "GTC"}
    signed = build_signed_query(params, FUTURES_SECRET, timestamp_ms=1591702613943, recv_window_ms=5000)
    assert signed == f"{FUTURES_QUERY}&signature={FUTURES_SIGNATURE}"


def test_order_is_kept_and_signature_is_last() -> None:
    a = build_signed_query([("b", "1"), ("a", "2")], "s", timestamp_ms=5, recv_window_ms=6)
    b = build_signed_query([("a", "2"), ("b", "1")], "s", timestamp_ms=5, recv_window_ms=6)
    assert a.startswith("b=1&a=2&recvWindow=6&timestamp=5&signature=")
    assert a.rsplit("&", 1)[1].startswith("signature=")
    assert a != b
    query, signature = a.rsplit("&signature=", 1)
    assert signature == hmac.new(b"s", query.encode(), hashlib.sha256).hexdigest()


def test_deterministic_and_secret_dependent() -> None:
    assert sign_query("x=1", "k") == sign_query("x=1", "k")
    assert sign_query("x=1", "k") != sign_query("x=1", "k2")
    assert sign_query("x=1", "k") != sign_query("x=2", "k")


def test_values_are_encoded_as_sent() -> None:
    params: dict[str, ParamValue] = {"reduceOnly": True, "closePosition": False,
                                     "qty": Decimal("1E+1"), "clientAlgoId": "a:b/c"}
    assert build_query(params) == (
        "reduceOnly=true&closePosition=false&qty=10&clientAlgoId=a%3Ab%2Fc")
    empty = build_signed_query({}, "s", timestamp_ms=1, recv_window_ms=2)
    assert empty.startswith("recvWindow=2&timestamp=1&")


@pytest.mark.parametrize("reserved", ["timestamp", "recvWindow", "signature"])
def test_reserved_params_are_refused(reserved: str) -> None:
    with pytest.raises(ValueError, match=reserved):
        build_signed_query({"symbol": "X", reserved: "1"}, "s", timestamp_ms=1, recv_window_ms=2)
