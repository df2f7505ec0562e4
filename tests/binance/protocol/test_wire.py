"""Wire parsing: golden payloads from the Binance docs, real payload samples, malformed input."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from watchdog.binance.protocol.wire import USER_EVENT_TYPES, Ignored, parse_user_event
from watchdog.binance.protocol.wire_rest import (
    parse_error_body,
    parse_open_algo_orders,
    parse_open_orders,
    parse_position_mode,
    parse_position_risk,
    parse_server_time,
)
from watchdog.core.events import (
    AccountConfigUpdate,
    AlgoUpdate,
    ListenKeyExpired,
    MarginCall,
    OpenAlgoOrder,
    OrderUpdate,
    PositionAmount,
    StreamPositions,
    TradeLite,
)
from watchdog.core.model import AlgoStatus, OrderId, PositionKey, PositionSide, Symbol
from watchdog.errors import WireFormatError

pytestmark = pytest.mark.usefixtures("socket_disabled")

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCS = REPO_ROOT / "tests" / "fixtures" / "binance_docs"
SHARED = REPO_ROOT / "tests" / "fixtures" / "nautilus"  # real payloads, see its PROVENANCE.md
LISTEN_KEY = "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"


def doc(name: str) -> Any:
    return json.loads((DOCS / name).read_text())


def key(symbol: str, side: PositionSide) -> PositionKey:
    return PositionKey(Symbol(symbol), side)


# ---------------------------------------------------------------- golden: documented payloads


def test_account_update_documented_example() -> None:
    t_ms = 1564745798938  # the row time is the event's T
    assert parse_user_event(doc("account_update.json")) == (StreamPositions(
        event_time_ms=1564745798939, transaction_time_ms=1564745798938, reason="ORDER",
        positions=(
            PositionAmount(key("BTCUSDT", PositionSide.BOTH), Decimal("0"), Decimal("0.00000"), t_ms),
            PositionAmount(key("BTCUSDT", PositionSide.LONG), Decimal("20"), Decimal("6563.66500"), t_ms),
            PositionAmount(key("BTCUSDT", PositionSide.SHORT), Decimal("-10"), Decimal("6563.86000"), t_ms),
        )),)


def test_order_trade_update_documented_example() -> None:
    assert parse_user_event(doc("order_trade_update.json")) == (OrderUpdate(
        event_time_ms=1568879465651, transaction_time_ms=1568879465650, symbol=Symbol("BTCUSDT"),
        position_side=PositionSide.LONG, order_id=OrderId(8886774), client_order_id="TEST", side="SELL",
        order_type="TRAILING_STOP_MARKET", original_type="TRAILING_STOP_MARKET", execution_type="NEW",
        status="NEW", reduce_only=False, close_position=False, stop_price=Decimal("7103.04"),
        quantity=Decimal("0.001"), filled_quantity=Decimal("0"), last_filled_quantity=Decimal("0"),
        realized_profit=Decimal("0")),)


def test_trade_lite_documented_example() -> None:
    assert parse_user_event(doc("trade_lite.json")) == (TradeLite(
        event_time_ms=1721895408092, transaction_time_ms=1721895408214, symbol=Symbol("BTCUSDT"),
        order_id=OrderId(8886774), client_order_id="z8hcUoOsqEdKMeKPSABslD", side="BUY",
        last_filled_quantity=Decimal("0.040"), last_filled_price=Decimal("64089.20")),)


def test_account_config_update_both_documented_forms() -> None:
    assert parse_user_event(doc("account_config_update_leverage.json")) == (
        AccountConfigUpdate(1611646737479, 1611646737476, Symbol("BTCUSDT"), 25, None),)
    assert parse_user_event(doc("account_config_update_multi_assets.json")) == (
        AccountConfigUpdate(1611646737479, 1611646737476, None, None, True),)


def test_account_config_update_of_an_unknown_kind_still_says_config_changed() -> None:
    payload = {"e": "ACCOUNT_CONFIG_UPDATE", "E": 2, "T": 1, "xx": {"q": 1}}
    assert parse_user_event(payload) == (AccountConfigUpdate(2, 1, None, None, None),)


@pytest.mark.parametrize("positions", [None, "absent"])
def test_account_update_without_positions_lists_none(positions: object) -> None:
    """Crossed FUNDING_FEE updates carry only balances (docs/BINANCE.md §2.1): no rows, not flatness."""
    payload = doc("account_update.json")
    payload["a"]["m"] = "FUNDING_FEE"
    if positions == "absent":
        del payload["a"]["P"]
    else:
        payload["a"]["P"] = positions
    (event,) = parse_user_event(payload)  # type: ignore[misc]
    assert isinstance(event, StreamPositions)
    assert (event.reason, event.positions) == ("FUNDING_FEE", ())


def test_margin_call_documented_example() -> None:
    assert parse_user_event(doc("margin_call.json")) == (MarginCall(1587727187525, (
        PositionAmount(key("ETHUSDT", PositionSide.LONG), Decimal("1.327"), Decimal(0), 1587727187525),)),)


def test_algo_update_canceled_documented_example() -> None:
    assert parse_user_event(doc("algo_update_canceled.json")) == (AlgoUpdate(
        event_time_ms=1750515742303, transaction_time_ms=1750515742297, symbol=Symbol("BNBUSDT"),
        position_side=PositionSide.BOTH, algo_id=OrderId(2148719), client_algo_id="Q5xaq5EGKgXXa0fD7fs0Ip",
        side="SELL", order_type="TAKE_PROFIT", status=AlgoStatus.CANCELED, actual_order_id=None,
        reduce_only=False, close_position=False, trigger_price=Decimal("750"), quantity=Decimal("0.01"),
        trigger_time_ms=0, reject_reason="Reduce Only reject"),)


def test_algo_update_production_triggered_frame_in_stream_wrapper() -> None:
    assert parse_user_event(doc("algo_update_triggered_stream.json")) == (AlgoUpdate(
        event_time_ms=1765431097037, transaction_time_ms=1765431097030, symbol=Symbol("DOGEUSDT"),
        position_side=PositionSide.BOTH, algo_id=OrderId(1000000033225453),
        client_algo_id="O-20251211-053131-ZYWR-000-9", side="BUY", order_type="STOP_MARKET",
        status=AlgoStatus.TRIGGERED, actual_order_id=OrderId(88937381063), reduce_only=False,
        close_position=False, trigger_price=Decimal("0.13855"), quantity=Decimal("38"),
        trigger_time_ms=1765431097019, reject_reason=""),)


def test_open_algo_orders_documented_object() -> None:
    assert parse_open_algo_orders(doc("open_algo_orders.json")) == (OpenAlgoOrder(
        symbol=Symbol("1000BONKUSDT"), position_side=PositionSide.BOTH, algo_id=OrderId(4000001783523430),
        client_algo_id="x-cvBPrNm903c051e8321fb6bd7f528b", side="SELL", order_type="STOP_MARKET",
        status=AlgoStatus.NEW, actual_order_id=None, reduce_only=True, close_position=False,
        trigger_price=Decimal("0.0029410"), quantity=Decimal("109673"), create_time_ms=1784653912169,
        update_time_ms=1784653912169),)


@pytest.mark.parametrize("event_time", ["1736996475556", 1736996475556])
def test_listen_key_expired_accepts_string_and_integer_e(event_time: object) -> None:
    payload = doc("listen_key_expired.json") | {"E": event_time}
    assert parse_user_event(payload) == (ListenKeyExpired(1736996475556),)


@pytest.mark.parametrize("name", ["account_update.json", "order_trade_update.json", "trade_lite.json",
                                  "margin_call.json", "algo_update_canceled.json",
                                  "account_config_update_leverage.json"])
def test_string_e_parses_like_integer_e(name: str) -> None:
    payload = doc(name)
    as_string = payload | {"E": str(payload["E"])}
    assert parse_user_event(as_string) == parse_user_event(payload)


def test_unknown_event_type_is_ignored_not_an_error() -> None:
    for event_type in ("STRATEGY_UPDATE", "GRID_UPDATE", "CONDITIONAL_ORDER_TRIGGER_REJECT", "SOMETHING_NEW"):
        assert parse_user_event({"e": event_type, "E": 1}) == Ignored(event_type)
    assert parse_user_event({"stream": "k", "data": {"e": "GRID_UPDATE"}}) == Ignored("GRID_UPDATE")
    assert "ALGO_UPDATE" in USER_EVENT_TYPES


def test_json_numbers_become_exact_decimals_never_float_arithmetic() -> None:
    payload = doc("trade_lite.json") | {"l": 0.1, "L": 64089}
    (event,) = parse_user_event(payload)  # type: ignore[misc]
    assert isinstance(event, TradeLite)
    assert event.last_filled_quantity == Decimal("0.1")
    assert event.last_filled_price == Decimal(64089)


def test_order_status_outside_the_documented_enum_parses() -> None:
    for status in ("NEW_ADL", "NEW_INSURANCE"):
        payload = doc("order_trade_update.json")
        payload["o"]["X"] = status
        (event,) = parse_user_event(payload)  # type: ignore[misc]
        assert isinstance(event, OrderUpdate)
        assert event.status == status


def test_optional_order_fields_take_binance_none_values() -> None:
    payload = doc("order_trade_update.json")
    payload["o"].update(sp=None, rp=None)
    for field in ("cp", "ot"):
        del payload["o"][field]
    (event,) = parse_user_event(payload)  # type: ignore[misc]
    assert isinstance(event, OrderUpdate)
    assert (event.stop_price, event.realized_profit, event.close_position, event.original_type) == (
        Decimal(0), Decimal(0), False, "TRAILING_STOP_MARKET")


# ---------------------------------------------------------------- REST


def test_position_risk_v2_keeps_flat_rows_and_scope() -> None:
    rows = [
        {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "0.000", "entryPrice": "0.0",
         "updateTime": 0, "leverage": "10", "marginType": "cross"},
        {"symbol": "ETHUSDT", "positionSide": "BOTH", "positionAmt": "-1.5", "entryPrice": "2500.10",
         "updateTime": 1625474304765},
    ]
    snap = parse_position_risk(rows, request_id=7, requested_time_ms=10, received_time_ms=20,
                               symbols=["BTCUSDT", "ETHUSDT"])
    assert (snap.request_id, snap.requested_time_ms, snap.received_time_ms) == (7, 10, 20)
    assert snap.symbols == frozenset({"BTCUSDT", "ETHUSDT"})
    assert snap.positions == (
        PositionAmount(key("BTCUSDT", PositionSide.BOTH), Decimal("0.000"), Decimal("0.0"), 0),
        PositionAmount(key("ETHUSDT", PositionSide.BOTH), Decimal("-1.5"), Decimal("2500.10"), 1625474304765))


def test_position_risk_v3_and_empty_answer() -> None:
    row = {"symbol": "BTCUSDT", "positionSide": "LONG", "positionAmt": "0.010", "entryPrice": "60000",
           "breakEvenPrice": "60010", "adl": 1, "updateTime": 5}
    assert parse_position_risk([row], request_id=1, requested_time_ms=1, received_time_ms=2).positions == (
        PositionAmount(key("BTCUSDT", PositionSide.LONG), Decimal("0.010"), Decimal("60000"), 5),)
    empty = parse_position_risk([], request_id=1, requested_time_ms=1, received_time_ms=2)
    assert (empty.positions, empty.symbols) == ((), None)


def test_account_positions_array_without_entry_price() -> None:
    body = {"totalWalletBalance": "1", "positions": [
        {"symbol": "ETHUSDT", "positionSide": "SHORT", "positionAmt": "-2", "unrealizedProfit": "1",
         "updateTime": 9}]}
    snap = parse_position_risk(body, request_id=1, requested_time_ms=1, received_time_ms=2)
    assert snap.positions == (PositionAmount(key("ETHUSDT", PositionSide.SHORT), Decimal(-2), Decimal(0), 9),)
    with pytest.raises(WireFormatError) as err:
        parse_position_risk({"positions": None}, request_id=1, requested_time_ms=1, received_time_ms=2)
    assert (err.value.event_type, err.value.field) == ("account", "positions")


def test_position_risk_duplicate_key_is_an_error() -> None:
    row = {"symbol": "X", "positionSide": "BOTH", "positionAmt": "1", "entryPrice": "1", "updateTime": 1}
    with pytest.raises(WireFormatError, match="duplicate") as err:
        parse_position_risk([row, dict(row)], request_id=1, requested_time_ms=1, received_time_ms=2)
    assert err.value.field == "[1].positionSide"


def test_open_orders_row() -> None:
    row = {"symbol": "BTCUSDT", "positionSide": "SHORT", "orderId": 2**60, "clientOrderId": "abc",
           "side": "BUY", "type": "LIMIT", "status": "NEW", "reduceOnly": "true",
           "closePosition": False, "stopPrice": "0", "origQty": "0.40", "time": 1, "updateTime": 2}
    (order,) = parse_open_orders([row])
    assert (order.order_id, order.original_type, order.reduce_only, order.quantity) == (
        2**60, "LIMIT", True, Decimal("0.40"))


def test_actual_order_id_as_string_and_int() -> None:
    row = doc("open_algo_orders.json")[0]
    for value in ("88937381063", 88937381063):
        (order,) = parse_open_algo_orders([row | {"actualOrderId": value, "algoStatus": "TRIGGERED"}])
        assert (order.actual_order_id, order.status) == (88937381063, AlgoStatus.TRIGGERED)


def test_small_rest_bodies() -> None:
    assert parse_server_time({"serverTime": 1499827319559}) == 1499827319559
    assert parse_position_mode({"dualSidePosition": False}) is False
    assert parse_error_body({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}) == (
        -2015, "Invalid API-key, IP, or permissions for action.")
    assert parse_error_body({"code": -1021}) == (-1021, "")
    body: object
    for body in ("<html>", None, [], {"code": "x"}, {"code": True}, {"msg": "m"}):
        assert parse_error_body(body) is None
    with pytest.raises(WireFormatError) as err:
        parse_server_time({"serverTime": "soon"})
    assert (err.value.event_type, err.value.field) == ("time", "serverTime")
    with pytest.raises(WireFormatError):
        parse_position_mode([])


# ---------------------------------------------------------------- malformed input


def mutated(name: str, path: tuple[Any, ...], value: object) -> Any:
    payload = copy.deepcopy(doc(name))
    target = payload
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


DELETE = object()

MALFORMED = [
    ("account_update.json", ("a", "P", 1, "pa"), DELETE, "ACCOUNT_UPDATE", "a.P[1].pa", "missing"),
    ("account_update.json", ("a", "P", 2, "ep"), "six", "ACCOUNT_UPDATE", "a.P[2].ep", "not a decimal"),
    ("account_update.json", ("a", "P", 0, "ps"), "MIDDLE", "ACCOUNT_UPDATE", "a.P[0].ps", "position side"),
    ("account_update.json", ("a", "P", 0), "row", "ACCOUNT_UPDATE", "a.P[0]", "expected an object"),
    ("account_update.json", ("a",), [], "ACCOUNT_UPDATE", "a", "expected an object"),
    ("account_update.json", ("T",), None, "ACCOUNT_UPDATE", "T", "expected an integer"),
    ("order_trade_update.json", ("o", "i"), 1.5, "ORDER_TRADE_UPDATE", "o.i", "expected an integer"),
    ("order_trade_update.json", ("o", "q"), "NaN", "ORDER_TRADE_UPDATE", "o.q", "finite"),
    ("order_trade_update.json", ("o", "q"), True, "ORDER_TRADE_UPDATE", "o.q", "expected a decimal"),
    ("order_trade_update.json", ("o", "R"), "maybe", "ORDER_TRADE_UPDATE", "o.R", "boolean"),
    ("order_trade_update.json", ("o", "s"), "", "ORDER_TRADE_UPDATE", "o.s", "empty symbol"),
    ("order_trade_update.json", ("o", "X"), 3, "ORDER_TRADE_UPDATE", "o.X", "expected a string"),
    ("order_trade_update.json", ("o",), DELETE, "ORDER_TRADE_UPDATE", "o", "missing"),
    ("trade_lite.json", ("E",), -5, "TRADE_LITE", "E", "negative"),
    ("trade_lite.json", ("i",), "12a", "TRADE_LITE", "i", "non-negative integer"),
    ("margin_call.json", ("p",), {}, "MARGIN_CALL", "p", "expected an array"),
    ("margin_call.json", ("p", 0, "s"), DELETE, "MARGIN_CALL", "p[0].s", "missing"),
    ("margin_call.json", ("p", 0), 1, "MARGIN_CALL", "p[0]", "expected an object"),
    ("account_config_update_leverage.json", ("ac", "l"), "x", "ACCOUNT_CONFIG_UPDATE", "ac.l", "integer"),
    ("account_config_update_multi_assets.json", ("ai", "j"), DELETE, "ACCOUNT_CONFIG_UPDATE", "ai.j",
     "missing"),
    ("algo_update_canceled.json", ("o", "X"), "PAUSED", "ALGO_UPDATE", "o.X", "unknown algo status"),
    ("algo_update_canceled.json", ("o", "X"), DELETE, "ALGO_UPDATE", "o.X", "missing"),
    ("algo_update_canceled.json", ("o", "ai"), "x1", "ALGO_UPDATE", "o.ai", "integer"),
    ("algo_update_canceled.json", ("o", "cp"), DELETE, "ALGO_UPDATE", "o.cp", "missing"),
    ("listen_key_expired.json", ("E",), "", "listenKeyExpired", "E", "integer"),
]


@pytest.mark.parametrize(("name", "path", "value", "event_type", "field", "problem"), MALFORMED)
def test_malformed_field_is_named(name: str, path: tuple[Any, ...], value: object, event_type: str,
                                  field: str, problem: str) -> None:
    with pytest.raises(WireFormatError) as err:
        parse_user_event(mutated(name, path, value))
    assert (err.value.event_type, err.value.field) == (event_type, field)
    assert problem in err.value.problem
    assert f"{event_type}: field {field!r}" in str(err.value)


@pytest.mark.parametrize("payload", [None, [], "x", 3, {"stream": "k", "data": []}, {"E": 1},
                                     {"e": 5}])
def test_not_an_event_object(payload: object) -> None:
    with pytest.raises(WireFormatError) as err:
        parse_user_event(payload)
    assert err.value.field in ("$", "data", "e")


@pytest.mark.parametrize(("parser", "rows", "field"), [
    (parse_open_orders, {}, "$"),
    (parse_open_orders, [[]], "[0]"),
    (parse_open_algo_orders, [{"symbol": "X"}], "[0].positionSide"),
    (parse_open_orders, [{"symbol": "X", "positionSide": "LONG", "orderId": "1"}], "[0].type"),
])
def test_malformed_rest_rows(parser: Any, rows: object, field: str) -> None:
    with pytest.raises(WireFormatError) as err:
        parser(rows)
    assert err.value.field == field


def test_malformed_rest_row_names_row_and_field() -> None:
    row = doc("open_algo_orders.json")[0] | {"triggerPrice": "1.2.3"}
    with pytest.raises(WireFormatError) as err:
        parse_open_algo_orders([doc("open_algo_orders.json")[0], row])
    assert (err.value.event_type, err.value.field) == ("openAlgoOrders", "[1].triggerPrice")
    with pytest.raises(WireFormatError) as err:
        parse_position_risk([{"symbol": "X", "positionSide": "BOTH", "positionAmt": "1", "updateTime": 1}],
                            request_id=1, requested_time_ms=1, received_time_ms=1)
    assert (err.value.event_type, err.value.field) == ("positionRisk", "[0].entryPrice")


def test_excerpts_never_carry_a_listen_key() -> None:
    expired = doc("listen_key_expired.json") | {"E": "not-a-time"}
    wrapped = {"stream": LISTEN_KEY, "data": {"e": "ALGO_UPDATE", "E": 1, "T": 1, "listenKey": LISTEN_KEY,
                                              "o": {"url": f"/ws/{LISTEN_KEY}"}}}
    for payload in (expired, wrapped, {"stream": LISTEN_KEY, "data": "junk"}):
        with pytest.raises(WireFormatError) as err:
            parse_user_event(payload)
        assert LISTEN_KEY not in err.value.excerpt
        assert LISTEN_KEY not in str(err.value)
    assert "<redacted>" in err.value.excerpt or err.value.excerpt == '"junk"'


# ------------------------------------------------ real payload samples (NautilusTrader's test data)


def shared_files(prefix: tuple[str, ...]) -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(p for p in SHARED.glob("*.json") if p.name.startswith(prefix))


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"Binance payload samples not present at {SHARED}")
    return SHARED


def test_every_shared_stream_sample_parses(shared_dir: Path) -> None:
    samples = shared_files(("rs_", "ws_"))
    assert samples
    for path in samples:
        events = parse_user_event(json.loads(path.read_text()))
        assert isinstance(events, tuple), path.name
        assert len(events) == 1, path.name


def test_shared_samples_spot_checks(shared_dir: Path) -> None:
    def one(name: str) -> Any:
        (event,) = parse_user_event(json.loads((shared_dir / name).read_text()))  # type: ignore[misc]
        return event

    assert one("ws_futures_trade_lite.json").order_id == 8389765739703625592  # > 2**53, exact
    zero = one("ws_futures_order_update_liquidation_zero_qty.json")  # null N/n/sp/AP
    assert (zero.stop_price, zero.quantity, zero.status) == (Decimal(0), Decimal("0.000"), "FILLED")
    assert one("rs_order_update_adl.json").status == "NEW_ADL"
    assert one("rs_order_update_insurance.json").status == "NEW_INSURANCE"
    triggering = one("ws_futures_algo_update_triggering.json")
    assert (triggering.status, triggering.actual_order_id) == (AlgoStatus.TRIGGERING, None)
    assert one("ws_futures_algo_update_finished.json").actual_order_id == 88937381063
    assert one("rs_account_update_bnfcr.json").positions == ()


def test_shared_rest_samples(shared_dir: Path) -> None:
    def load(name: str) -> Any:
        return json.loads((shared_dir / name).read_text())

    hedge = parse_position_risk(load("http_futures_account_positions_hedge.json"), request_id=1,
                                requested_time_ms=1, received_time_ms=2)
    assert [(p.key.side, p.amount) for p in hedge.positions] == [
        (PositionSide.LONG, Decimal("20.000")), (PositionSide.SHORT, Decimal("-10.000"))]
    one_way = parse_position_risk(load("http_futures_account_positions_one_way.json"), request_id=1,
                                  requested_time_ms=1, received_time_ms=2)
    assert [(p.key.side, p.amount, p.update_time_ms) for p in one_way.positions] == [
        (PositionSide.BOTH, Decimal(0), 0)]
    assert parse_position_mode(load("http_futures_account_position_side_dual.json")) is True
    (order,) = parse_open_orders(load("http_futures_account_orders.json"))
    assert (order.order_type, order.stop_price, order.position_side) == (
        "TRAILING_STOP_MARKET", Decimal("9300"), PositionSide.SHORT)


# ---------------------------------------------------------------- memo caches stay invisible


def test_memoised_keys_and_decimals_still_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    from watchdog.binance.protocol import wirefields

    first = parse_user_event(doc("account_update.json"))
    assert parse_user_event(doc("account_update.json")) == first  # served from the memo
    bad_side = mutated("account_update.json", ("a", "P", 1, "ps"), "long")
    with pytest.raises(WireFormatError, match="position side"):
        parse_user_event(bad_side)
    monkeypatch.setattr(wirefields, "_CACHED_SYMBOLS", 0)
    monkeypatch.setattr(wirefields, "_CACHED_DECIMALS", 0)
    fresh = mutated("account_update.json", ("a", "P", 0, "s"), "NEVERSEENUSDT")
    fresh["a"]["P"][0]["pa"] = "12345.678901"
    (event,) = parse_user_event(fresh)  # type: ignore[misc]
    assert isinstance(event, StreamPositions)
    assert event.positions[0].key == key("NEVERSEENUSDT", PositionSide.BOTH)
    assert event.positions[0].amount == Decimal("12345.678901")
    assert "NEVERSEENUSDT" not in wirefields._KEYS
    assert "12345.678901" not in wirefields._DECIMALS


def test_a_real_read_again_with_moved_prices_is_the_same_rows(shared_dir: Path) -> None:
    """Binance's positionRisk moves markPrice, unRealizedProfit, liquidationPrice and margins
    on every read of an idle account; none of them is read, so such a read is the very tuple
    of rows parsed before (no Decimal built). A moved amount, entry price or updateTime, or a
    row in another place, is parsed anew; a bad row is still refused."""
    rows = json.loads((shared_dir / "http_futures_account_positions_hedge.json").read_text())

    def parse(body: object) -> tuple[PositionAmount, ...]:
        return parse_position_risk(body, request_id=1, requested_time_ms=1,
                                   received_time_ms=2).positions

    first = parse(copy.deepcopy(rows))
    moved = copy.deepcopy(rows)
    for row in moved:
        row.update(markPrice="6701.1", unRealizedProfit="1.5", liquidationPrice="5931.02",
                   isolatedMargin="15518.1")
    assert parse(moved) is first
    for field, value in (("positionAmt", "21.000"), ("entryPrice", "6563.7"),
                         ("updateTime", 1625474304766)):
        changed = copy.deepcopy(moved)
        changed[0][field] = value
        again = parse(changed)
        assert again is not first
        assert again[1] == first[1]
        assert again[0] != first[0]
    assert parse(moved[::-1]) == first[::-1]
    broken = copy.deepcopy(moved)
    broken[0]["updateTime"] = True
    with pytest.raises(WireFormatError, match=r"\[0\]\.updateTime"):
        parse(broken)
