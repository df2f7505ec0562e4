"""Value types (core/model.py): a PositionKey's cached hash keeps it the value it was."""

from __future__ import annotations

import copy
import pickle

from hypothesis import given
from hypothesis import strategies as st

from watchdog.core.model import PositionKey, PositionSide, Symbol

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
