"""Edge cases of the shared field readers and of error excerpts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from watchdog.binance.protocol import wirefields as f

pytestmark = pytest.mark.usefixtures("socket_disabled")


@pytest.mark.parametrize(("value", "text"), [
    (None, "null"), (True, "true"), (False, "false"), ("x" * 50, repr("x" * 40 + "…")), (7, "7"),
    (2**300, "<huge int>"), (1.5, "1.5"), ({}, "object"), ([], "array"), (b"x", "bytes"),
])
def test_describe(value: object, text: str) -> None:
    assert f.describe(value) == text


def test_optional_readers() -> None:
    row: f.JsonObject = {"n": None, "e": "", "t": "5", "s": 5, "z": [1]}
    assert f.rows(row, "n") == []
    assert f.rows(row, "absent") == []
    assert f.opt_number(row, "e") == Decimal(0)
    assert f.opt_uint(row, "n", 3) == 3
    assert f.opt_uint(row, "t") == 5
    assert f.opt_text(row, "n", "d") == "d"
    assert f.opt_order_id(row, "e") is None
    assert f.opt_flag(row, "n") is False
    for reader, key in ((f.opt_text, "s"), (f.opt_uint, "z"), (f.opt_flag, "s"), (f.opt_number, "z")):
        with pytest.raises(f.BadField) as err:
            reader(row, key)
        assert err.value.field == key


def test_required_readers_reject_missing() -> None:
    for reader in (f.number, f.uint, f.text, f.symbol, f.flag, f.position_side, f.obj):
        with pytest.raises(f.BadField, match="missing"):
            reader({}, "k")


def test_numbers() -> None:
    assert f.number({"k": 0.1}, "k") == Decimal("0.1")
    assert f.number({"k": "-1.50"}, "k") == Decimal("-1.50")
    bad: object
    for bad in ("Infinity", "-inf", "1..2", [], None, float("nan")):
        with pytest.raises(f.BadField):
            f.number({"k": bad}, "k")
    for bad in ("1" * 31, "١٢", "-1", " 1", 1.0, True):
        with pytest.raises(f.BadField):
            f.uint({"k": bad}, "k")


def test_flags_accept_rest_strings() -> None:
    assert f.flag({"k": "true"}, "k") is True
    assert f.flag({"k": "FALSE"}, "k") is False
    with pytest.raises(f.BadField):
        f.flag({"k": 1}, "k")


def test_field_paths() -> None:
    assert f.BadField("pa", "p").within("a.P[1]").field == "a.P[1].pa"
    assert f.BadField("[2].x", "p").within("rows").field == "rows[2].x"
    assert f.BadField("", "p").within("a.P[0]").field == "a.P[0]"


def test_excerpt_redacts_and_bounds() -> None:
    key = "k" * 60
    payload = {"listenKey": key, "url": f"wss://x/ws?listenKey={key}", "stream": 5, "big": 2**400,
               "deep": [[[[[[[[[[["bottom"]]]]]]]]]]], "many": list(range(100))}
    text = f.excerpt(payload, limit=10_000)
    assert key not in text
    assert text.count(f.REDACTED) == 3
    assert "<huge int>" in text
    assert "bottom" not in text
    assert "99" not in text
    assert len(f.excerpt(payload)) == 200
    assert f.excerpt({"short": "s", "listenKey": "abc"}) == '{"short":"s","listenKey":"<redacted>"}'
    assert f.excerpt(Decimal(1)) == "\"Decimal('1')\""
