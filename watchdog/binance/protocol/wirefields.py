"""Typed field readers for decoded Binance JSON, shared by ``wire.py``.

Why a separate module: the readers are the one place that decides what "a decimal", "an id" or
"a timestamp" looks like on the wire, so every parser treats the same oddity the same way.

Rules of this module:
1. Readers raise the private ``BadField`` (field name + problem); the public parsers in
   ``wire.py`` turn it into ``WireFormatError`` with the event type, the full field path and a
   redacted excerpt. ``BadField`` never leaves ``watchdog.binance``.
2. Numbers become ``Decimal`` from their text: JSON strings as they are, JSON integers exactly,
   JSON floats through ``repr`` (shortest round-trip text) — never through float arithmetic.
   NaN and infinities are rejected.
3. Ids and timestamps are non-negative Python ints (Binance ids exceed 2**53); they arrive as
   JSON integers or as digit strings (``E`` of listenKeyExpired, ``ai`` of ALGO_UPDATE).
4. ``bool`` is never accepted where a number is expected (it is an ``int`` subclass in Python).
5. The fast path is a dict lookup plus a ``type(v) is …`` check: no regex, no allocation
   beyond the result.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Final

from watchdog.core.model import ZERO, AlgoStatus, OrderId, PositionKey, PositionSide, Symbol

__all__ = [
    "REDACTED",
    "ROOT",
    "BadField",
    "JsonObject",
    "algo_status",
    "describe",
    "excerpt",
    "flag",
    "number",
    "obj",
    "opt_flag",
    "opt_number",
    "opt_order_id",
    "opt_text",
    "opt_uint",
    "position_key",
    "position_side",
    "rows",
    "symbol",
    "text",
    "uint",
]

JsonObject = dict[str, object]

REDACTED: Final = "<redacted>"
ROOT: Final = "$"
"""Field path of the whole body (the JSON-path root), for "not an object/array" errors."""
# Keys whose values are secrets on this wire: the listenKey itself, and the stream-mode wrapper's
# "stream" name, which is the listenKey in /private/stream mode (docs/BINANCE.md §1.2, §2.2).
_SECRET_KEYS: Final = frozenset({"listenKey", "listenkey", "stream"})
# Longer than any order id / timestamp Binance sends (ids < 2**63 have 19 digits); keeps int()
# far away from CPython's 4300-digit conversion limit.
_MAX_DIGITS: Final = 30
_SIDES: Final = {"BOTH": PositionSide.BOTH, "LONG": PositionSide.LONG, "SHORT": PositionSide.SHORT}
# Memo of decimal texts already seen ("0", "0.000", a symbol's usual prices...): Decimal is
# immutable, so sharing one instance is safe, and a dict hit is several times cheaper than
# parsing. Bounded: once full, new texts are parsed every time (no eviction, no growth).
_DECIMALS: Final[dict[str, Decimal]] = {}
_CACHED_DECIMALS: Final = 8192
_CACHED_TEXT_LEN: Final = 24
_ALGO_STATUSES: Final = {status.value: status for status in AlgoStatus}
_FLAG_TEXT: Final = {"true": True, "false": False, "TRUE": True, "FALSE": False}


class BadField(Exception):
    """A field broke our expectations; ``field`` grows into a path as it propagates up."""

    __slots__ = ("field", "problem")

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem

    def within(self, prefix: str) -> BadField:
        """Return the same problem with ``prefix`` prepended to the field path."""
        sep = "" if self.field.startswith("[") else "."
        return BadField(f"{prefix}{sep}{self.field}" if self.field else prefix, self.problem)


def describe(value: object) -> str:
    """Short, safe description of a bad value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 256 else "<huge int>"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _missing(key: str) -> BadField:
    return BadField(key, "missing")


def obj(parent: JsonObject, key: str) -> JsonObject:
    """Required nested JSON object."""
    try:
        value = parent[key]
    except KeyError:
        raise _missing(key) from None
    if type(value) is dict:
        return value
    raise BadField(key, f"expected an object, got {describe(value)}")


def rows(parent: JsonObject, key: str) -> list[object]:
    """Optional JSON array: missing or null means empty (absence is not flatness, caller knows)."""
    value = parent.get(key)
    if type(value) is list:
        return value
    if value is None:
        return []
    raise BadField(key, f"expected an array, got {describe(value)}")


def _to_decimal(key: str, value: object) -> Decimal:
    if type(value) is str:
        cached = _DECIMALS.get(value)
        if cached is not None:
            return cached
    try:
        if type(value) is str or type(value) is int:
            result = Decimal(value)
        elif type(value) is float:
            result = Decimal(repr(value))
        else:
            raise BadField(key, f"expected a decimal string, got {describe(value)}")
    except (InvalidOperation, ValueError):
        raise BadField(key, f"not a decimal: {describe(value)}") from None
    if result.is_finite():
        if type(value) is str and len(value) <= _CACHED_TEXT_LEN and len(_DECIMALS) < _CACHED_DECIMALS:
            _DECIMALS[value] = result
        return result
    raise BadField(key, f"not a finite decimal: {describe(value)}")


def number(parent: JsonObject, key: str) -> Decimal:
    """Required quantity or price."""
    try:
        value = parent[key]
    except KeyError:
        raise _missing(key) from None
    if type(value) is str:
        cached = _DECIMALS.get(value)
        if cached is not None:
            return cached
    return _to_decimal(key, value)


def opt_number(parent: JsonObject, key: str, default: Decimal = ZERO) -> Decimal:
    """Optional quantity or price: missing, null or "" give ``default`` (documented per field)."""
    value = parent.get(key)
    if value is None or value == "":
        return default
    return _to_decimal(key, value)


def _to_uint(key: str, value: object) -> int:
    if type(value) is int:
        if value >= 0:
            return value
        raise BadField(key, f"negative: {describe(value)}")
    if type(value) is str:
        if value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS:
            return int(value)
        raise BadField(key, f"not a non-negative integer: {describe(value)}")
    raise BadField(key, f"expected an integer, got {describe(value)}")


def uint(parent: JsonObject, key: str) -> int:
    """Required id or epoch-ms timestamp (JSON integer or digit string)."""
    try:
        value = parent[key]
    except KeyError:
        raise _missing(key) from None
    return _to_uint(key, value)


def opt_uint(parent: JsonObject, key: str, default: int = 0) -> int:
    """Optional integer: missing or null give ``default`` (Binance itself uses 0 for "none")."""
    value = parent.get(key)
    if value is None:
        return default
    return _to_uint(key, value)


def opt_order_id(parent: JsonObject, key: str) -> OrderId | None:
    """Optional id where Binance sends "" (or nothing) until it exists, e.g. ``ai``/``actualOrderId``."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    return OrderId(_to_uint(key, value))


def text(parent: JsonObject, key: str) -> str:
    """Required string (may be empty)."""
    try:
        value = parent[key]
    except KeyError:
        raise _missing(key) from None
    if type(value) is str:
        return value
    raise BadField(key, f"expected a string, got {describe(value)}")


def opt_text(parent: JsonObject, key: str, default: str = "") -> str:
    """Optional string: missing or null give ``default``."""
    value = parent.get(key)
    if value is None:
        return default
    if type(value) is str:
        return value
    raise BadField(key, f"expected a string, got {describe(value)}")


def symbol(parent: JsonObject, key: str) -> str:
    """Required non-empty symbol."""
    value = text(parent, key)
    if value:
        return value
    raise BadField(key, "empty symbol")


def _to_flag(key: str, value: object) -> bool:
    if value is True or value is False:
        return value
    if type(value) is str:
        flag_ = _FLAG_TEXT.get(value)
        if flag_ is not None:
            return flag_
    raise BadField(key, f"expected a boolean, got {describe(value)}")


def flag(parent: JsonObject, key: str) -> bool:
    """Required boolean (REST sometimes sends "true"/"false" strings; both accepted)."""
    try:
        value = parent[key]
    except KeyError:
        raise _missing(key) from None
    return _to_flag(key, value)


def opt_flag(parent: JsonObject, key: str) -> bool:
    """Optional boolean: missing or null mean false (used only where Binance omits false)."""
    value = parent.get(key)
    if value is None:
        return False
    return _to_flag(key, value)


def position_side(parent: JsonObject, key: str) -> PositionSide:
    """Required ``positionSide``/``ps``: BOTH, LONG or SHORT."""
    try:
        value = parent[key]
    except KeyError:
        raise _missing(key) from None
    side = _SIDES.get(value) if type(value) is str else None
    if side is not None:
        return side
    raise BadField(key, f"unknown position side {describe(value)}")


def algo_status(parent: JsonObject, key: str) -> AlgoStatus:
    """Required algo status; an unknown value is an error, never a guess (see ``wire``)."""
    value = parent.get(key)
    status = _ALGO_STATUSES.get(value) if type(value) is str else None
    if status is not None:
        return status
    if key not in parent:
        raise _missing(key)
    raise BadField(key, f"unknown algo status {describe(value)}")


# Memo symbol → positionSide text → PositionKey: keys are immutable and few (symbols x 3 sides), and
# building a frozen dataclass costs more than the rest of a position row. Bounded like the
# decimal memo: when full, keys are built (and checked) every time.
_KEYS: Final[dict[object, dict[object, PositionKey]]] = {}
_CACHED_SYMBOLS: Final = 4096


def position_key(row: JsonObject, symbol_key: str, side_key: str) -> PositionKey:
    """Required (symbol, positionSide) pair as a ``PositionKey``."""
    symbol_ = row.get(symbol_key)
    side = row.get(side_key)
    by_side = _KEYS.get(symbol_) if type(symbol_) is str else None
    if by_side is not None:
        cached = by_side.get(side) if type(side) is str else None
        if cached is not None:
            return cached
    key = PositionKey(Symbol(symbol(row, symbol_key)), position_side(row, side_key))
    if by_side is None and len(_KEYS) < _CACHED_SYMBOLS:
        by_side = _KEYS[key.symbol] = {}
    if by_side is not None:
        by_side[key.side.value] = key
    return key


# ---------------------------------------------------------------- excerpts (error path only)


def _redacted(value: object, secrets: list[str], depth: int = 0) -> object:
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            if k in _SECRET_KEYS:
                if isinstance(v, str):
                    secrets.append(v)
                out[str(k)] = REDACTED
            else:
                out[str(k)] = _redacted(v, secrets, depth + 1)
        return out
    if isinstance(value, list):
        return [_redacted(v, secrets, depth + 1) for v in value[:50]]
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return "<huge int>"
    return value


def excerpt(payload: object, limit: int = 200) -> str:
    """Compact JSON of ``payload`` for an error message, with every listenKey removed.

    Values under secret keys are replaced, and any other occurrence of those values (e.g. a
    listenKey echoed inside a URL) is replaced too.
    """
    secrets: list[str] = []
    clean = _redacted(payload, secrets)
    # Cannot fail: ``_redacted`` bounds depth and big ints, ``default=repr`` covers non-JSON types.
    out = json.dumps(clean, separators=(",", ":"), ensure_ascii=False, default=repr)
    for secret in secrets:
        if len(secret) >= 8:
            out = out.replace(secret, REDACTED)
    return out[:limit]
