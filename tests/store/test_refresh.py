"""``TouchCalls`` (watchdog/store/refresh.py rule 1): the call ``WatchdogCalls.touch_verified``
builds, equal in every key and argument, with the KEYS list of the call before kept while the
run of positions and states is the same; a kept list is never changed afterwards. Rule 2: the
entries packed ahead are the bytes ``pack_command`` makes of them."""

from __future__ import annotations

from unittest.mock import patch

from hiredis import pack_command
from hypothesis import given, settings
from hypothesis import strategies as st

from poswatch.calls import ScriptCall, WatchdogCalls
from tests.support.store import make_view, position_key, publisher_on
from watchdog.core.model import PositionKey, PositionState, PositionView
from watchdog.store import runner as runner_module
from watchdog.store.keys import AccountKeys
from watchdog.store.refresh import TouchCalls

_KEYS = [position_key(f"S{i}USDT") for i in range(6)]
_STATES = [PositionState.OPEN, PositionState.CLOSED, PositionState.UNKNOWN]
_run = st.lists(st.tuples(st.integers(0, len(_KEYS) - 1), st.sampled_from(_STATES)),
                min_size=1, max_size=6, unique_by=lambda entry: entry[0])
# A step: a new run, or the run before again (the hot case) with versions moved on; and its
# verified_ms, fence and closed TTL (a takeover, a new fence).
_step = st.tuples(st.one_of(st.none(), _run), st.integers(1, 5), st.integers(1, 3),
                  st.sampled_from([60_000, 600_000]))


def _old(calls: WatchdogCalls, views: list[PositionView], verified_ms: int, closed_ttl_ms: int,
         fence: int) -> ScriptCall:
    """The publisher's ``_touch_call`` as it was before the cache (c5a007c)."""
    keys = AccountKeys("test")
    return calls.touch_verified([(keys.of(view.key), view.version - 1, view.state._value_)
                                 for view in views], verified_ms, closed_ttl_ms, fence)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(_step, min_size=1, max_size=12))
def test_every_call_is_the_one_built_afresh_and_a_same_run_keeps_its_keys(
        steps: list[tuple[list[tuple[int, PositionState]] | None, int, int, int]]) -> None:
    account = AccountKeys("test")
    calls = WatchdogCalls(account)
    names: dict[PositionKey, object] = {}
    touches = TouchCalls(calls, lambda key: names.setdefault(key, account.of(key)))  # type: ignore[arg-type,return-value]
    run: list[tuple[int, PositionState]] = [(0, PositionState.OPEN)]
    version, verified_ms = 1, 1_700_000_000_000
    given_before: list[tuple[ScriptCall, list[str]]] = []
    before: ScriptCall | None = None
    for new_run, bump, fence, closed_ttl_ms in steps:
        same = new_run is None or new_run == run
        run = run if new_run is None else new_run
        version += bump
        verified_ms += 900
        # equal key objects, not the same ones, for a new run: the book's keys are its own
        views = [make_view(_KEYS[i] if same else position_key(f"S{i}USDT"), state=state,
                           version=version + i, verified_ms=verified_ms) for i, state in run]
        call = touches.call(views, verified_ms, closed_ttl_ms, fence)
        assert call == _old(calls, views, verified_ms, closed_ttl_ms, fence)
        if before is not None and same:
            assert call.keys is before.keys  # kept: the runner packs it once
        given_before.append((call, list(call.keys)))
        for earlier, as_given in given_before:
            assert earlier.keys == as_given  # never changed in place
        before = call


def test_a_new_run_of_the_same_length_and_states_gets_its_own_keys() -> None:
    account = AccountKeys("test")
    touches = TouchCalls(WatchdogCalls(account), account.of)
    first = touches.call([make_view(_KEYS[0], version=2, verified_ms=10)], 10, 60_000, 1)
    other = touches.call([make_view(_KEYS[1], version=2, verified_ms=20)], 20, 60_000, 1)
    assert other.keys is not first.keys
    assert other.keys[-1] == account.of(_KEYS[1]).position
    assert first.keys[-1] == account.of(_KEYS[0]).position


def test_the_same_positions_in_another_state_are_another_run() -> None:
    """A closure among the re-verified: its lease key joins the KEYS, its state the ARGV."""
    account = AccountKeys("test")
    calls = WatchdogCalls(account)
    touches = TouchCalls(calls, account.of)
    for state in (PositionState.OPEN, PositionState.CLOSED, PositionState.CLOSED, PositionState.OPEN):
        views = [make_view(key, state=state, version=3, verified_ms=10) for key in _KEYS[:2]]
        assert touches.call(views, 10, 60_000, 1) == _old(calls, views, 10, 60_000, 1)


# ---------------------------------------------------------------- rule 2: the entries packed

# Version bases next to a change of digit count (and the daemon's 16-digit ones), so that runs
# and reads cross one: within a run (no template fits) and between two reads of one run.
_bases = st.sampled_from([1, 7, 95, 996, 99_990, 1_795_573_638_050_040, 9_999_999_999_999_990])


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.one_of(st.none(), _run), st.integers(0, 6),
                                st.sampled_from([1, 5, 10**6]), st.integers(1, 10**13)),
                      min_size=1, max_size=10),
       base=_bases, spread=st.sampled_from([0, 1, 3, 11]))
def test_the_runner_sends_pack_commands_bytes_for_every_touch_call(
        steps: list[tuple[list[tuple[int, PositionState]] | None, int, int, int]], base: int,
        spread: int) -> None:
    """Whatever the versions' digits, within a run and from read to read: the bytes the runner
    sends for each call are ``pack_command(call.command())``'s, and the pairs were packed
    ahead whenever every version has the same digit count."""
    runner = publisher_on("redis://127.0.0.1:1/0")._runner  # packs only: never connects
    account = AccountKeys("test")
    calls = WatchdogCalls(account)
    names: dict[PositionKey, object] = {}
    touches = TouchCalls(calls, lambda key: names.setdefault(key, account.of(key)))  # type: ignore[arg-type,return-value]
    run: list[tuple[int, PositionState]] = [(0, PositionState.OPEN)]
    version = base
    for new_run, bump, fence, verified_ms in steps:
        run = run if new_run is None else new_run
        version += bump
        views = [make_view(_KEYS[i], state=state, version=version + spread * j, verified_ms=verified_ms)
                 for j, (i, state) in enumerate(run)]
        call = touches.call(views, verified_ms, 60_000, fence)
        assert call == _old(calls, views, verified_ms, 60_000, fence)
        with patch.object(runner_module, "_KEPT_KEYS", 0):  # the long-KEYS path, short runs
            assert b"".join(runner._packed(call)) == pack_command(call.command())  # type: ignore[arg-type]
        versions = [view.version - 1 for view in views]
        same_digits = len({len(str(v)) for v in versions}) == 1
        assert (call.args.pairs is not None) is same_digits  # type: ignore[attr-defined]
