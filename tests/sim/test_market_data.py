"""Public market data (klines, ticker price, premium index) in Binance's shapes; account
balance and trades; and Binance-shaped JSON for paths the simulator does not serve."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.simulator import SimClient
from watchdog.sim import Simulator
from watchdog.sim import rejections as rj
from watchdog.sim.market import default_specs
from watchdog.sim.market_data import INTERVALS, kline_weight, klines, premium_index, ticker_price

[BTC] = default_specs(["BTCUSDT"])
NOW = int(datetime(2026, 12, 6, 23, 7, 31, tzinfo=UTC).timestamp() * 1000)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def test_the_newest_candle_is_the_open_one_and_rows_have_binances_twelve_fields() -> None:
    rows = klines(BTC, Decimal("90000"), interval="1h", limit=3, now_ms=NOW, start_ms=None, end_ms=None)
    assert [r[0] for r in rows] == [ms(2026, 12, 6, 21), ms(2026, 12, 6, 22), ms(2026, 12, 6, 23)]
    assert rows[-1] == [ms(2026, 12, 6, 23), "90000.00", "90000.00", "90000.00", "90000.00", "0",
                        ms(2026, 12, 7) - 1, "0", 0, "0", "0", "0"]


@pytest.mark.parametrize(("interval", "opens"), [
    ("1w", [ms(2026, 11, 23), ms(2026, 11, 30)]),       # Mondays
    ("1M", [ms(2026, 11, 1), ms(2026, 12, 1)]),          # calendar months
    ("8h", [ms(2026, 12, 6, 8), ms(2026, 12, 6, 16)]),
])
def test_candles_open_on_binances_boundaries(interval: str, opens: list[int]) -> None:
    rows = klines(BTC, Decimal(1), interval=interval, limit=2, now_ms=NOW, start_ms=None, end_ms=None)
    assert [r[0] for r in rows] == opens


def test_start_and_end_select_the_window_oldest_first() -> None:
    rows = klines(BTC, Decimal(1), interval="1d", limit=500, now_ms=NOW, start_ms=ms(2026, 12, 1, 12),
                  end_ms=ms(2026, 12, 4, 1))
    assert [r[0] for r in rows] == [ms(2026, 12, day) for day in (2, 3, 4)]
    rows = klines(BTC, Decimal(1), interval="1d", limit=2, now_ms=NOW, start_ms=ms(2026, 12, 1), end_ms=None)
    assert [r[0] for r in rows] == [ms(2026, 12, 1), ms(2026, 12, 2)]


@given(st.sampled_from(sorted(INTERVALS)), st.integers(1, 60), st.integers(ms(2020, 1, 1), ms(2030, 1, 1)))
def test_candles_are_contiguous_and_end_at_now(interval: str, limit: int, now_ms: int) -> None:
    rows = klines(BTC, Decimal(1), interval=interval, limit=limit, now_ms=now_ms, start_ms=None, end_ms=None)
    assert len(rows) == limit
    assert all(a[6] + 1 == b[0] for a, b in itertools.pairwise(rows))
    assert rows[-1][0] <= now_ms <= rows[-1][6]  # type: ignore[operator]


@pytest.mark.parametrize(("kwargs", "code"), [({"interval": "7m", "limit": 5}, -1120),
                                              ({"interval": "1h", "limit": 1501}, -1130),
                                              ({"interval": "1h", "limit": 0}, -1130)])
def test_bad_interval_or_limit_is_refused_with_binances_code(kwargs: dict[str, object], code: int) -> None:
    with pytest.raises(rj.Rejection) as refused:
        klines(BTC, Decimal(1), now_ms=NOW, start_ms=None, end_ms=None, **kwargs)  # type: ignore[arg-type]
    assert refused.value.code == code


def test_kline_weight_follows_the_limit() -> None:
    assert [kline_weight(n) for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)] == [1, 1, 2, 2, 5, 5, 10, 10]


def test_ticker_and_premium_index_are_one_object_with_a_symbol_a_list_without() -> None:
    specs = default_specs()
    prices = {s.symbol: s.price for s in specs}
    assert ticker_price(specs, prices, NOW, "BASUSDT") == {"symbol": "BASUSDT", "price": "0.00832653",
                                                           "time": NOW}
    assert [row["symbol"] for row in ticker_price(specs, prices, NOW, None)] == [  # type: ignore[index]
        "BTCUSDT", "ETHUSDT", "BASUSDT"]
    index = premium_index(specs, prices, NOW, "BTCUSDT")
    assert isinstance(index, dict)
    assert index["nextFundingTime"] == ms(2026, 12, 7)
    assert set(index) == {"symbol", "markPrice", "indexPrice", "estimatedSettlePrice", "lastFundingRate",
                          "interestRate", "nextFundingTime", "time"}


@pytest.mark.parametrize(("method", "path"), [("GET", "/fapi/v1/nothing"), ("GET", "/fapi/v3/klines"),
                                              ("POST", "/fapi/v1/klines"), ("GET", "/private/ws/abc")])
async def test_an_unknown_path_or_method_answers_binance_json(sim_client: SimClient, method: str,
                                                              path: str) -> None:
    response = await sim_client.request(method, path, signed=False)
    assert response.status_code in (404, 405)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"code": -5000, "msg": f"Path {path}, Method {method} is invalid"}


async def test_an_unknown_control_path_keeps_the_control_error_shape(sim_client: SimClient) -> None:
    response = await sim_client.control("POST", "nothing")
    assert response.status_code == 404
    assert "error" in response.json()


async def test_balance_and_user_trades_follow_the_account(sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("BTCUSDT", "BUY", "0.002")
    sim.set_mark_price("BTCUSDT", "90500")
    sim.fill("BTCUSDT", "SELL", "0.001")
    for version in ("v2", "v3"):
        [row] = (await sim_client.get(f"/fapi/{version}/balance")).json()
        assert row["asset"] == "USDT"
        assert Decimal(row["crossUnPnl"]) == Decimal("0.5")       # 0.001 left, 500 up
        assert row["marginAvailable"] is True
    trades = (await sim_client.get("/fapi/v1/userTrades", symbol="BTCUSDT")).json()
    assert [(t["side"], t["qty"], t["price"], t["realizedPnl"]) for t in trades] == [
        ("BUY", "0.002", "90000.00", "0.00000000"), ("SELL", "0.001", "90500.00", "0.50000000")]
    assert trades[0]["id"] < trades[1]["id"]
    assert (await sim_client.get("/fapi/v1/userTrades", symbol="BTCUSDT", fromId=trades[1]["id"])).json() == [
        trades[1]]
    assert (await sim_client.get("/fapi/v1/userTrades", symbol="ETHUSDT")).json() == []
    missing = await sim_client.get("/fapi/v1/userTrades")
    assert missing.json()["code"] == -1102
