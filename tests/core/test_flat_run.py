"""Flat runs (``core/flat_run.py``, book rule 9): start, grow, break."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from watchdog.core.flat_run import FlatRun


def test_a_run_starts_at_its_first_read_and_its_proof_only_moves_forward() -> None:
    run = FlatRun()
    assert (run.since_ms, run.proven_ms) == (None, None)
    run.shown_flat(1_000, request_seq=1)
    assert (run.since_ms, run.proven_ms) == (1_000, 1_000)
    run.shown_flat(3_000, request_seq=3)
    run.shown_flat(2_000, request_seq=2)  # answered late: the proof never goes back
    assert (run.since_ms, run.proven_ms) == (1_000, 3_000)


def test_a_read_in_flight_at_the_break_cannot_start_a_new_run() -> None:
    run = FlatRun()
    run.shown_flat(1_000, request_seq=1)
    run.broken(seq=5)
    assert (run.since_ms, run.proven_ms) == (None, None)
    run.shown_flat(2_000, request_seq=5)  # requested at the break's own event: before it
    run.shown_flat(2_100, request_seq=4)
    assert run.since_ms is None
    run.shown_flat(2_500, request_seq=6)
    assert (run.since_ms, run.proven_ms) == (2_500, 2_500)


def test_a_run_inherits_the_break_it_was_born_under() -> None:
    run = FlatRun(break_seq=9)
    run.shown_flat(1_000, request_seq=9)
    assert run.since_ms is None


@given(st.lists(st.one_of(st.integers(0, 10_000), st.none()), max_size=40),
       st.integers(0, 3))
def test_a_run_starts_only_after_its_break_and_its_proof_is_never_before_its_start(
        steps: list[int | None], in_flight: int) -> None:
    """``None`` breaks the run; a number is a flat read answered ``in_flight`` events late."""
    run = FlatRun()
    last_break = 0
    queue: list[tuple[int, int]] = []  # (requested_ms, seq) not yet answered
    for seq, step in enumerate(steps, start=1):
        if step is None:
            run.broken(seq)
            last_break = seq
        else:
            queue.append((step, seq))
        if len(queue) > in_flight:
            requested_ms, request_seq = queue.pop(0)
            before = run.since_ms
            run.shown_flat(requested_ms, request_seq)
            if before is None and run.since_ms is not None:
                assert request_seq > last_break
                assert run.since_ms == requested_ms
        if run.since_ms is not None:
            assert run.proven_ms is not None
            assert run.proven_ms >= run.since_ms
