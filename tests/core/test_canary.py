"""core/canary.py: the stream's liveness proof, decided without a clock or a socket."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core.canary import (
    CANARY_CLIENT_ID_PREFIX,
    Canary,
    CanaryBlind,
    CanaryPolicy,
    CanaryProblem,
    CancelCanary,
    PlaceCanary,
    is_canary,
)

POLICY = CanaryPolicy(interval_ms=60_000, bound_ms=5_000, retry_ms=1_000)
T0 = 1_000_000


def placed(canary: Canary, now: int = T0 + 60_000) -> str:
    actions = canary.tick(now, stream_live=True)
    assert len(actions) == 1
    assert isinstance(actions[0], PlaceCanary)
    return actions[0].client_id


def test_nothing_before_one_interval_nor_while_the_stream_is_not_live() -> None:
    canary = Canary(POLICY, T0)
    assert canary.tick(T0 + 59_999, stream_live=True) == []
    assert canary.tick(T0 + 60_000, stream_live=False) == []
    client_id = placed(canary, T0 + 61_000)
    assert is_canary(client_id)
    assert client_id == f"{CANARY_CLIENT_ID_PREFIX}{T0 + 61_000}"
    assert len(client_id) <= 36  # Binance's client id limit


def test_an_update_in_time_proves_the_stream_and_cancels() -> None:
    canary = Canary(POLICY, T0)
    client_id = placed(canary)
    assert canary.observe("someone-else", T0 + 60_010) == []
    assert canary.observe(client_id, T0 + 60_050) == [CancelCanary(client_id, "update seen after 50 ms")]
    assert canary.observe(client_id, T0 + 60_060) == []  # the CANCELED update: nothing more
    assert (canary.proven, canary.missed, canary.last_latency_ms) == (1, 0, 50)
    assert canary.tick(T0 + 64_000, stream_live=True) == []  # cancel in flight: not again
    canary.cancel_done(T0 + 60_100)
    assert canary.tick(T0 + 119_999, stream_live=True) == []
    assert isinstance(canary.tick(T0 + 120_000, stream_live=True)[0], PlaceCanary)


def test_no_update_within_the_bound_is_blind_and_the_canary_goes() -> None:
    canary = Canary(POLICY, T0)
    client_id = placed(canary)
    assert canary.tick(T0 + 64_999, stream_live=True) == []
    actions = canary.tick(T0 + 65_000, stream_live=True)
    assert isinstance(actions[0], CanaryBlind)
    assert client_id in actions[0].message
    assert actions[1:] == [CancelCanary(client_id, "bound over, no update")]
    assert canary.observe(client_id, T0 + 65_100) == []  # too late: the verdict stands
    assert canary.missed == 1


def test_a_failed_cancel_is_retried_and_an_overdue_canary_reported_once() -> None:
    canary = Canary(POLICY, T0)
    client_id = placed(canary)
    canary.observe(client_id, T0 + 60_010)
    canary.cancel_failed(T0 + 60_020)
    assert canary.tick(T0 + 60_500, stream_live=True) == []
    assert canary.tick(T0 + 61_020, stream_live=True) == [CancelCanary(client_id, "retry")]
    canary.cancel_failed(T0 + 61_030)
    actions = canary.tick(T0 + 66_100, stream_live=True)
    assert isinstance(actions[0], CanaryProblem)
    assert actions[1:] == [CancelCanary(client_id, "retry")]
    canary.cancel_failed(T0 + 66_110)
    assert canary.tick(T0 + 67_200, stream_live=True) == [CancelCanary(client_id, "retry")]


def test_a_refused_placement_is_a_problem_not_blindness() -> None:
    canary = Canary(POLICY, T0)
    placed(canary)
    actions = canary.place_failed(T0 + 60_005, "-4061 position side", maybe_placed=False)
    assert [type(a) for a in actions] == [CanaryProblem]
    assert canary.tick(T0 + 100_000, stream_live=True) == []  # next one an interval later
    assert isinstance(canary.tick(T0 + 120_000, stream_live=True)[0], PlaceCanary)


def test_a_placement_of_unknown_outcome_is_cancelled_by_client_id() -> None:
    canary = Canary(POLICY, T0)
    client_id = placed(canary)
    actions = canary.place_failed(T0 + 60_005, "timeout", maybe_placed=True)
    assert actions[1:] == [CancelCanary(client_id, "placement outcome unknown")]


def test_a_stream_gap_voids_the_canary() -> None:
    canary = Canary(POLICY, T0)
    client_id = placed(canary)
    assert canary.tick(T0 + 66_000, stream_live=False) == [
        CancelCanary(client_id, "stream gap: canary void")]
    assert canary.missed == 0


def test_the_bound_must_be_shorter_than_the_interval() -> None:
    with pytest.raises(ValueError, match="bound < interval"):
        CanaryPolicy(interval_ms=5_000, bound_ms=5_000)


_STEP = st.tuples(st.sampled_from(["tick", "tick", "observe", "cancel_ok", "cancel_fail",
                                   "place_rejected", "place_unknown"]),
                  st.integers(0, 3_000), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=60))
def test_never_out_longer_than_the_bound_and_blind_only_without_an_update(
        steps: list[tuple[str, int, bool]]) -> None:
    """Whatever happens, a tick past the bound asks for the cancel (or retries it), a canary
    is judged blind only when no update came in time, and at most once."""
    policy = CanaryPolicy(interval_ms=10_000, bound_ms=2_000, retry_ms=500)
    canary = Canary(policy, 0)
    now = 0
    seen: set[str] = set()
    blind: list[str] = []
    for what, dt, live in steps:
        now += dt
        actions = []
        if what == "tick":
            actions = canary.tick(now, stream_live=live)
        elif what == "observe" and canary.client_id:
            if canary.phase == "out":
                seen.add(canary.client_id)
            actions = canary.observe(canary.client_id, now)
        elif what == "cancel_ok":
            canary.cancel_done(now)
        elif what == "cancel_fail":
            canary.cancel_failed(now)
        elif what == "place_rejected":
            actions = canary.place_failed(now, "refused", maybe_placed=False)
        elif what == "place_unknown":
            actions = canary.place_failed(now, "timeout", maybe_placed=True)
        for action in actions:
            if isinstance(action, CanaryBlind):
                assert canary.client_id not in seen
                blind.append(canary.client_id)
        # rule 3: once the bound is over, the canary is never left "out" by a tick
        if what == "tick" and canary.client_id and now - canary.sent_ms >= policy.bound_ms:
            assert canary.phase != "out"
    assert len(blind) == len(set(blind))
