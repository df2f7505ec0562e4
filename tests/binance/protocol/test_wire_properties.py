"""Property tests: whatever arrives on the wire, parsing answers with events, Ignored or WireFormatError."""

from __future__ import annotations

import contextlib
import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from watchdog.binance.protocol import wire_rest
from watchdog.binance.protocol.wire import Ignored, parse_user_event
from watchdog.binance.protocol.wire_rest import (
    parse_error_body,
    parse_open_algo_orders,
    parse_open_orders,
    parse_position_risk,
)
from watchdog.core.events import TradeLite
from watchdog.errors import WireFormatError

pytestmark = pytest.mark.usefixtures("socket_disabled")

DOCS = Path(__file__).resolve().parents[2] / "fixtures" / "binance_docs"
STREAM_DOCS = [json.loads((DOCS / name).read_text()) for name in sorted(
    p.name for p in DOCS.glob("*.json") if p.name != "open_algo_orders.json")]
ALGO_ROWS = json.loads((DOCS / "open_algo_orders.json").read_text())
SECRET = "SeCrEtLiStEnKeY0123456789abcdefXYZ"
EVENT_TYPES = ["ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE", "ALGO_UPDATE", "TRADE_LITE", "listenKeyExpired",
               "ACCOUNT_CONFIG_UPDATE", "MARGIN_CALL", "GRID_UPDATE"]

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["0", "1.5", "-2", "", "NaN", "1e5", "BOTH", "NEW", "x"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["e", "E", "T", "o", "a", "P", "p", "s", "ps", "pa", "ep", "X", "i", "data",
                         "stream", "listenKey", "ac", "ai", "j", "l", "q", "aid", "caid", "tp", "R", "cp"])
        | st.text(max_size=4),
        inner, max_size=6),
    max_leaves=10,
)
SLOW = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_user_event(payload: object) -> None:
    error: WireFormatError | None = None
    result: object = None
    try:
        result = parse_user_event(payload)
    except WireFormatError as exc:
        error = exc
    if error is not None:
        assert error.field
        assert SECRET not in error.excerpt
        assert SECRET not in str(error)
    elif not isinstance(result, Ignored):
        assert isinstance(result, tuple)
        assert len(result) == 1


@SLOW
@given(json_values)
def test_arbitrary_json_never_crashes(payload: object) -> None:
    check_user_event(payload)


@SLOW
@given(st.sampled_from(EVENT_TYPES), st.dictionaries(st.text(max_size=3), json_values, max_size=5))
def test_arbitrary_bodies_of_known_event_types(event_type: str, body: dict[str, Any]) -> None:
    check_user_event(body | {"e": event_type, "listenKey": SECRET})
    check_user_event({"stream": SECRET, "data": body | {"e": event_type}})


def paths(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


@st.composite
def mutated_documents(draw: st.DrawFn) -> object:
    """A documented payload with one field replaced by junk or removed."""
    payload = copy.deepcopy(draw(st.sampled_from(STREAM_DOCS)))
    path = draw(st.sampled_from(paths(payload)))
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return payload


@SLOW
@given(mutated_documents())
def test_one_broken_field_in_a_documented_payload(payload: object) -> None:
    check_user_event(payload)


@SLOW
@given(st.lists(st.dictionaries(st.sampled_from(list(ALGO_ROWS[0])), scalars, max_size=8), max_size=3)
       | json_values)
def test_rest_parsers_never_crash(body: object) -> None:
    for parse in (parse_open_orders, parse_open_algo_orders,
                  lambda b: parse_position_risk(b, request_id=1, requested_time_ms=1, received_time_ms=1)):
        with contextlib.suppress(WireFormatError):
            parse(body)
    result = parse_error_body(body)
    assert result is None or isinstance(result[0], int)


@SLOW
@given(st.decimals(allow_nan=False, allow_infinity=False), st.integers(min_value=0, max_value=2**64))
def test_numbers_and_ids_round_trip_exactly(amount: Decimal, order_id: int) -> None:
    payload = {"e": "TRADE_LITE", "E": str(order_id), "T": order_id, "s": "X", "i": order_id, "c": "",
               "S": "BUY", "l": str(amount), "L": int(order_id)}
    (event,) = parse_user_event(payload)  # type: ignore[misc]
    assert isinstance(event, TradeLite)
    assert event.last_filled_quantity == amount
    assert str(event.last_filled_quantity) == str(amount)
    assert event.order_id == order_id == event.event_time_ms


# Values equal in Python but not on the wire (1 == 1.0 == True), and texts that differ.
_alike = st.sampled_from([1, 1.0, True, "1", "1.0", 0, False, "0", None, "x"])
_risk_rows = st.lists(st.tuples(st.sampled_from(["AUSDT", "BUSDT"]), _alike, _alike, _alike),
                      min_size=1, max_size=3)
# A second read mostly like the first: one field of one row replaced.
_risk_reads = _risk_rows.flatmap(lambda rows: st.tuples(st.just(rows), st.one_of(
    _risk_rows, st.tuples(st.integers(0, len(rows) - 1), st.integers(1, 3), _alike).map(
        lambda c: [r if i != c[0] else (*r[:c[1]], c[2], *r[c[1] + 1:])
                   for i, r in enumerate(rows)]))))


def _risk_body(rows: list[tuple[str, object, object, object]]) -> list[dict[str, object]]:
    return [{"symbol": s, "positionSide": "BOTH", "positionAmt": a, "entryPrice": e,
             "updateTime": t, "markPrice": "1"} for s, a, e, t in rows]


def _parsed(body: object) -> object:
    try:
        return parse_position_risk(body, request_id=1, requested_time_ms=1,
                                   received_time_ms=1).positions
    except WireFormatError as exc:
        return str(exc)


def _forget_reads() -> None:
    """Forget the rows and reads the parse remembers: the next read parses as if first."""
    wire_rest._LAST_ROWS.clear()
    wire_rest._LAST_READS.clear()


@SLOW
@given(_risk_reads)
@example(([("AUSDT", "1", "1", 1)], [("AUSDT", "1", "1", True)]))
@example(([("AUSDT", "1", "1", 1)], [("AUSDT", "1", "1", 1.0)]))
@example(([("AUSDT", "1", 1, 1)], [("AUSDT", "1", True, 1)]))
@example(([("AUSDT", 1, "1", 1)], [("AUSDT", True, "1", 1)]))
def test_an_unchanged_position_row_parses_as_if_read_first(
        reads: tuple[list[tuple[str, object, object, object]],
                     list[tuple[str, object, object, object]]]) -> None:
    """positionRisk rows are remembered per key (the same texts give the same PositionAmount):
    after any earlier read, a read parses exactly as it would alone, errors included (a
    ``True`` or ``5.0`` where ``5`` was is no longer equal)."""
    first, second = reads
    _parsed(_risk_body(first))
    after = _parsed(_risk_body(second))
    _forget_reads()
    alone = _parsed(_risk_body(second))
    assert after == alone
    if isinstance(alone, tuple):  # and a row read again is the object parsed before
        again = _parsed(_risk_body(second))
        assert isinstance(again, tuple)
        exact = [type(a) is str and type(e) is str and type(t) is int for _, a, e, t in second]
        assert all(a is b for a, b, same in zip(again, alone, exact, strict=True) if same)


@SLOW
@given(_risk_reads, st.sampled_from(["2", "9.5"]))
@example(([("AUSDT", "1", "1", 1)], [("AUSDT", "1", "1", True)]), "2")
@example(([("AUSDT", "1", "1", 0)], [("AUSDT", "1", "1", False)]), "2")
@example(([("AUSDT", "1", "1", 1)], [("AUSDT", "1", "1", 1.0)]), "2")
@example(([("AUSDT", "1", "1", 1), ("AUSDT", "1", "1", 1)],
          [("AUSDT", "1", "1", 1), ("AUSDT", "1", "1", 1)]), "2")
def test_an_unchanged_read_parses_as_if_read_first(
        reads: tuple[list[tuple[str, object, object, object]],
                     list[tuple[str, object, object, object]]], mark: str) -> None:
    """A whole positionRisk read whose read fields equal a remembered read's is that read's
    tuple of rows: after any earlier reads, a read (its markPrice moved) parses exactly as it
    would alone, errors included, and a valid read of texts and int times read again (mark
    price moved) is the very tuple parsed before."""
    def body(rows: list[tuple[str, object, object, object]]) -> list[dict[str, object]]:
        return [{**row, "markPrice": mark} for row in _risk_body(rows)]

    first, second = reads
    _parsed(body(first))
    _parsed(body(second))
    after = _parsed(body(second))
    _forget_reads()
    alone = _parsed(body(second))
    assert after == alone
    again = _parsed(_risk_body(second))
    assert again == alone
    exact = all(type(a) is str and type(e) is str and type(t) is int for _, a, e, t in second)
    if isinstance(alone, tuple) and exact:
        assert again is alone
