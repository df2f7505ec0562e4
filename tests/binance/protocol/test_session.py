"""The session of one stream connection (``binance/protocol/session.py``), rule by rule, with no
socket and no clock: silence, the 24 h rotation and its successor, what ends a connection and
what its end means for the next one."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.binance.protocol.reconnect import HEALTHY_AFTER_S
from watchdog.binance.protocol.session import (
    BLIND,
    EXPIRED,
    ROTATION,
    BlindRequest,
    Do,
    Ending,
    Input,
    Phase,
    Session,
    Step,
    SuccessorFate,
    aborts,
    blind_request,
    market_stream_ending,
    successor_fate,
    user_stream_ending,
)

DAY_S = 23 * 3600.0


def session(opened_at: float = 100.0, rotate_after_s: float = DAY_S,
            max_silence_s: float = 10.0) -> Session:
    return Session(opened_at=opened_at, rotate_after_s=rotate_after_s, max_silence_s=max_silence_s)


# ------------------------------------------------------------------ rule 1: silence

def test_the_wait_is_the_silence_left_until_the_rotation_is_nearer() -> None:
    s = session(opened_at=0.0, rotate_after_s=60.0)
    assert s.wait_s(0.0, 10.0) == 10.0
    assert s.wait_s(55.0, 10.0) == 5.0
    assert s.wait_s(61.0, 10.0) == -1.0  # overdue: the shell waits 0


def test_silence_ends_the_connection_with_its_reason_and_is_aborted() -> None:
    s = session(max_silence_s=10.0)
    assert s.timed_out(105.0, 0.0) == Step(Do.END, "silent: no frame for 10s")
    assert (s.phase, s.reason, s.asked) == (Phase.ENDED, "silent: no frame for 10s", False)
    assert aborts(s.reason)


def test_silence_wins_over_a_due_rotation() -> None:
    s = session(opened_at=0.0, rotate_after_s=60.0)
    assert s.timed_out(60.0, -0.1).do is Do.END


def test_a_wait_that_ran_out_early_changes_nothing() -> None:
    s = session()
    assert s.timed_out(101.0, 0.5) == Step(Do.SERVE)
    assert s.phase is Phase.SERVING


@pytest.mark.parametrize(("reason", "aborted"), [
    ("silent: no frame for 10s", True), ("closed: code=1006", False), (EXPIRED, False),
    (f"{BLIND}orders", False), (ROTATION, False), ("keepalive rejected: code -1125", False)])
def test_only_a_silent_connection_is_aborted(reason: str, aborted: bool) -> None:
    assert aborts(reason) is aborted


# ------------------------------------------------------------------ rule 2: rotation

def test_the_rotation_is_due_once_until_its_successor_fails() -> None:
    s = session(opened_at=0.0, rotate_after_s=60.0)
    assert s.timed_out(59.9, 5.0).do is Do.SERVE
    assert s.timed_out(60.0, 5.0).do is Do.ROTATE
    assert s.phase is Phase.ROTATING
    # While the successor is made only silence is waited for, and no second one is due.
    assert s.wait_s(500.0, 5.0) == 5.0
    assert s.timed_out(500.0, 5.0).do is Do.SERVE
    assert s.successor_failed(500.0, 2.5) == Step(Do.RETRY_ROTATION)
    assert (s.phase, s.rotate_at) == (Phase.SERVING, 502.5)
    assert s.wait_s(501.0, 5.0) == 1.5
    assert s.timed_out(502.5, 5.0).do is Do.ROTATE


def test_a_ready_successor_replaces_the_connection() -> None:
    s = session(opened_at=0.0, rotate_after_s=60.0)
    s.timed_out(60.0, 5.0)
    assert s.successor_ready() == Step(Do.SWITCH)
    assert s.phase is Phase.SWITCHED
    with pytest.raises(ValueError, match="cannot"):
        s.closed("closed: code=1000")


# ------------------------------------------------------------------ rule 3: what ends it

def test_what_ends_a_connection() -> None:
    closed, asked, expired = session(), session(), session()
    assert closed.closed("closed by server: code=1000") == Step(Do.END, "closed by server: code=1000")
    assert asked.asked_to_end(f"{BLIND}x") == Step(Do.END, f"{BLIND}x")
    assert expired.key_expired() == Step(Do.END, EXPIRED)
    assert (closed.asked, asked.asked, expired.asked) == (False, True, False)
    assert {closed.phase, asked.phase, expired.phase} == {Phase.ENDED}


_OPS = {
    Input.SILENT: lambda s: s.timed_out(s.rotate_at, 0.0),
    Input.ROTATION_DUE: lambda s: s.timed_out(s.rotate_at, 1.0),
    Input.SUCCESSOR_FAILED: lambda s: s.successor_failed(0.0, 1.0),
    Input.SUCCESSOR_READY: lambda s: s.successor_ready(),
    Input.CLOSED: lambda s: s.closed("closed"),
    Input.ASKED: lambda s: s.asked_to_end("asked"),
    Input.KEY_EXPIRED: lambda s: s.key_expired(),
}
_REACH = {
    Phase.SERVING: lambda s: None,
    Phase.ROTATING: lambda s: s.timed_out(s.rotate_at, 1.0),
    Phase.SWITCHED: lambda s: s.successor_ready(),
    Phase.ENDED: lambda s: s.closed("closed"),
}
_EXPECTED = {
    (Phase.SERVING, Input.SILENT): (Do.END, Phase.ENDED),
    (Phase.ROTATING, Input.SILENT): (Do.END, Phase.ENDED),
    (Phase.SERVING, Input.ROTATION_DUE): (Do.ROTATE, Phase.ROTATING),
    (Phase.ROTATING, Input.ROTATION_DUE): (Do.SERVE, Phase.ROTATING),  # none due while rotating
    (Phase.SERVING, Input.SUCCESSOR_FAILED): (Do.RETRY_ROTATION, Phase.SERVING),
    (Phase.ROTATING, Input.SUCCESSOR_FAILED): (Do.RETRY_ROTATION, Phase.SERVING),
    (Phase.SERVING, Input.SUCCESSOR_READY): (Do.SWITCH, Phase.SWITCHED),
    (Phase.ROTATING, Input.SUCCESSOR_READY): (Do.SWITCH, Phase.SWITCHED),
    **{(p, i): (Do.END, Phase.ENDED) for p in (Phase.SERVING, Phase.ROTATING)
       for i in (Input.CLOSED, Input.ASKED, Input.KEY_EXPIRED)},
}


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("event", list(Input))
def test_the_whole_table(phase: Phase, event: Input) -> None:
    s = session(opened_at=0.0, rotate_after_s=60.0)
    _REACH[phase](s)
    assert s.phase is phase
    expected = _EXPECTED.get((phase, event))
    if expected is None:  # an ended or replaced connection gets no more input
        with pytest.raises(ValueError, match="cannot"):
            _OPS[event](s)
        return
    assert (_OPS[event](s).do, s.phase) == expected


# ------------------------------------------------------------------ rule 4: after the end

@pytest.mark.parametrize(("reason", "asked", "lived_s", "expected"), [
    (f"{BLIND}positions", True, 1.0, Ending(reset_backoff=False, at_once=True)),
    (f"{BLIND}positions", True, HEALTHY_AFTER_S, Ending(reset_backoff=True, at_once=True)),
    (f"{BLIND}positions", False, 1.0, Ending(reset_backoff=False, at_once=False)),  # not ours
    ("keepalive rejected: code -1125", True, 1.0, Ending(reset_backoff=False, at_once=False)),
    (EXPIRED, False, 0.5, Ending(reset_backoff=False, at_once=False)),
    (EXPIRED, False, 3600.0, Ending(reset_backoff=True, at_once=False)),
    ("silent: no frame for 10s", False, HEALTHY_AFTER_S - 0.01,
     Ending(reset_backoff=False, at_once=False)),
    ("closed: code=1006", False, 86_400.0, Ending(reset_backoff=True, at_once=False)),
])
def test_user_stream_ending(reason: str, asked: bool, lived_s: float, expected: Ending) -> None:
    assert user_stream_ending(reason, asked=asked, lived_s=lived_s) == expected


@pytest.mark.parametrize(("reason", "lived_s", "expected"), [
    (ROTATION, 0.0, Ending(reset_backoff=True, at_once=True)),
    ("silent: no frame for 10s", 1.0, Ending(reset_backoff=False, at_once=False)),
    ("closed: code=1006", HEALTHY_AFTER_S, Ending(reset_backoff=True, at_once=False)),
    ("closed: code=1006", 0.1, Ending(reset_backoff=False, at_once=False)),
])
def test_market_stream_ending(reason: str, lived_s: float, expected: Ending) -> None:
    assert market_stream_ending(reason, lived_s=lived_s) == expected


# ------------------------------------------------------------------ rule 5 and the blind report

@pytest.mark.parametrize(("old_is_current", "error", "fate"), [
    (True, None, SuccessorFate.PROMOTE),
    (True, "mute", SuccessorFate.REJECT),
    (False, None, SuccessorFate.DROP),
    (False, "the old connection ended first", SuccessorFate.DROP),
])
def test_successor_fate(old_is_current: bool, error: str | None, fate: SuccessorFate) -> None:
    assert successor_fate(old_is_current=old_is_current, error=error) is fate


@pytest.mark.parametrize(("connected", "scheduled", "wait_s", "action"), [
    (False, False, 0.0, BlindRequest.RECONNECTING),
    (False, True, 30.0, BlindRequest.RECONNECTING),
    (True, True, 0.0, BlindRequest.SCHEDULED),
    (True, False, 0.0, BlindRequest.NOW),
    (True, False, 0.001, BlindRequest.LATER),
])
def test_blind_request(connected: bool, scheduled: bool, wait_s: float,
                       action: BlindRequest) -> None:
    assert blind_request(connected=connected, scheduled=scheduled, wait_s=wait_s) is action


# ------------------------------------------------------------------ the machine against the
# decisions it replaced (the inline code of UserDataStream._serve), on random histories

class _Inline:
    """What ``_serve`` decided before the machine: ``rotate_at`` set to infinity while a
    successor is made, silence checked first."""

    def __init__(self, opened_at: float, rotate_after_s: float, max_silence_s: float) -> None:
        self.rotate_at = opened_at + rotate_after_s
        self.max_silence_s = max_silence_s

    def wait_s(self, now_s: float, silence_left_s: float) -> float:
        return min(silence_left_s, self.rotate_at - now_s)

    def timed_out(self, now_s: float, silence_left_s: float) -> Step:
        if silence_left_s <= 0:
            return Step(Do.END, f"silent: no frame for {self.max_silence_s:g}s")
        if now_s >= self.rotate_at:
            self.rotate_at = math.inf
            return Step(Do.ROTATE)
        return Step(Do.SERVE)

    def successor_failed(self, now_s: float, retry_s: float) -> Step:
        self.rotate_at = now_s + retry_s
        return Step(Do.RETRY_ROTATION)


_steps = st.lists(st.tuples(st.floats(0.0, 120.0), st.floats(-1.0, 10.0),
                            st.sampled_from(["timeout", "failed", "wait"]),
                            st.floats(0.2, 30.0)), max_size=40)


@given(rotate_after_s=st.floats(1.0, 300.0), steps=_steps)
def test_the_machine_decides_as_the_inline_code_did(
        rotate_after_s: float, steps: list[tuple[float, float, str, float]]) -> None:
    now = 0.0
    machine = session(opened_at=now, rotate_after_s=rotate_after_s)
    inline = _Inline(now, rotate_after_s, 10.0)
    rotating = False
    for advance_s, silence_left_s, what, retry_s in steps:
        now += advance_s
        assert machine.wait_s(now, silence_left_s) == inline.wait_s(now, silence_left_s)
        if what == "failed" and rotating:  # a successor result only follows a rotation
            assert machine.successor_failed(now, retry_s) == inline.successor_failed(now, retry_s)
            rotating = False
        elif what == "timeout":
            step = machine.timed_out(now, silence_left_s)
            assert step == inline.timed_out(now, silence_left_s)
            if step.do is Do.END:
                assert machine.phase is Phase.ENDED
                assert aborts(machine.reason)
                return
            rotating = rotating or step.do is Do.ROTATE
            assert (machine.phase is Phase.ROTATING) is rotating
