"""Value types (core/model.py): a PositionKey's cached hash keeps it the value it was."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.core.model import (
    Knowledge,
    PositionKey,
    PositionSide,
    PositionState,
    PositionView,
    Source,
    Symbol,
)

keys = st.builds(PositionKey, st.text(max_size=6).map(Symbol), st.sampled_from(PositionSide))


@given(a=keys, b=keys)
def test_keys_hash_compare_and_order_by_symbol_and_side(a: PositionKey, b: PositionKey) -> None:
    pa, pb = (a.symbol, a.side), (b.symbol, b.side)
    assert (a == b) is (pa == pb)
    assert (a < b) is (pa < pb)
    if a == b:
        assert hash(a) == hash(b)
    assert hash(a) == hash(PositionKey(a.symbol, a.side))
    assert {a: 1}.get(PositionKey(a.symbol, a.side)) == 1
    assert copy.copy(a) == a
    assert pickle.loads(pickle.dumps(a)) == a
    assert repr(a) == f"PositionKey(symbol={a.symbol!r}, side={a.side!r})"
    assert str(a) == f"{a.symbol}:{a.side.value}"


views = st.builds(PositionView, keys, st.sampled_from(PositionState), st.sampled_from(Knowledge),
                  st.decimals(allow_nan=False, allow_infinity=False), st.decimals(allow_nan=False,
                  allow_infinity=False), st.sampled_from(Source), st.integers(0, 2**53),
                  st.integers(0, 2**53), st.integers(0, 2**53), st.text(max_size=8))


@given(view=views, verified_ms=st.integers(0, 2**53), version=st.integers(0, 2**53))
def test_a_reverified_view_is_the_view_with_two_fields_replaced(
        view: PositionView, verified_ms: int, version: int) -> None:
    """``reverified`` (slot setters, book rule 13) is ``dataclasses.replace``: every field,
    equality, hash, repr, pickling, and still frozen."""
    fast = view.reverified(verified_ms, version)
    plain = dataclasses.replace(view, verified_ms=verified_ms, version=version)
    assert fast == plain
    assert hash(fast) == hash(plain)
    assert repr(fast) == repr(plain)
    assert pickle.loads(pickle.dumps(fast)) == plain
    assert [getattr(fast, f.name) for f in dataclasses.fields(PositionView)] == [
        getattr(plain, f.name) for f in dataclasses.fields(PositionView)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.version = 0  # type: ignore[misc]
