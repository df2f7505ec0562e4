"""The chaos suite's judges (bench/chaos_rig.py), tried on made-up histories: each invariant must
catch what it is about and must not blame the watchdog for what the bot did or what the bounds
allow (docs/RELIABILITY.md, "Chaos suite")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bench.chaos_rig import Bounds, check_allow, check_cancels, check_guard

BOUNDS = Bounds()


def rig(answers: list[tuple[int, int, str, str, bool, str]] = (), *,  # type: ignore[assignment]
        down: list[list[Any]] | None = None, cancelled: set[int] | None = None,
        extra_lag_s: float = 0.0) -> Any:
    return SimpleNamespace(probe=SimpleNamespace(answers=list(answers)),
                           daemon=SimpleNamespace(down=[[0, 1, False]] + (down or [])),
                           bot=SimpleNamespace(cancelled=cancelled or set()), extra_lag_s=extra_lag_s)


def position(wall_ms: int, amount: str, symbol: str = "BASUSDT") -> dict[str, Any]:
    return {"kind": "position", "symbol": symbol, "position_side": "BOTH", "amount": amount,
            "wall_ms": wall_ms}


def algo(wall_ms: int, algo_id: int, status: str, amount: str, trigger: str = "0.0079", *,
         client_id: str = "bot") -> dict[str, Any]:
    return {"kind": "algo", "id": algo_id, "status": status, "symbol": "BASUSDT",
            "position_side": "BOTH", "side": "SELL", "type": "STOP_MARKET", "trigger_price": trigger,
            "qty": "1216", "close_position": False, "reduce_only": True, "position_amount": amount,
            "wall_ms": wall_ms, "client_id": client_id}


def ours(wall_ms: int, algo_id: int, status: str, amount: str) -> dict[str, Any]:
    return {**algo(wall_ms, algo_id, status, amount, "0.0075", client_id=f"wd-guard-{algo_id}"),
            "qty": "0", "close_position": True, "reduce_only": False}


HISTORY = [position(1_000, "1216"), position(10_000, "0")]


def allow(at: int) -> tuple[int, int, str, str, bool, str]:
    return (at, at + 5, "BASUSDT", "BOTH", True, "ok")


def test_an_allow_inside_the_closure_bound_is_tolerated_one_after_it_is_not() -> None:
    bound_ms = int(BOUNDS.closed_allow_s * 1000)
    allows, problems = check_allow(rig([allow(5_000), allow(10_000 + bound_ms - 10)]), HISTORY)
    assert (allows, problems) == (2, [])
    _, problems = check_allow(rig([allow(10_000 + bound_ms + 10)]), HISTORY)
    assert len(problems) == 1
    assert problems[0].startswith("(a) allow for BASUSDT:BOTH flat")


def test_a_reopen_inside_the_window_clears_the_allow_and_the_scenarios_lag_widens_the_bound() -> None:
    history = [*HISTORY, position(16_000, "5")]
    assert check_allow(rig([allow(15_998)]), history)[1] == []  # reopened before the answer ended
    assert check_allow(rig([allow(15_500)]), history)[1] != []  # flat 5.5 s when it answered
    assert check_allow(rig([allow(16_500)], extra_lag_s=2.0), HISTORY)[1] == []
    assert check_allow(rig([allow(17_500)], extra_lag_s=2.0), HISTORY)[1] != []


def test_a_position_that_never_existed_is_never_allowed() -> None:
    assert check_allow(rig([allow(50_000)]), [])[1] != []


def test_allows_while_the_daemon_is_down() -> None:
    history = [position(1_000, "1216")]  # open throughout: only the down rule can object
    graceful = [[20_000, 30_000, False]]
    assert check_allow(rig([allow(20_001)], down=graceful), history)[1] != []
    assert check_allow(rig([allow(30_001)], down=graceful), history)[1] == []  # restarted
    killed = [[20_000, None, True]]
    assert check_allow(rig([allow(20_000 + 3_000)], down=killed), history)[1] == []
    assert check_allow(rig([allow(20_000 + 4_000)], down=killed), history)[1] != []


def test_a_stop_cancelled_on_an_open_position_is_a_violation_unless_the_bot_did_it() -> None:
    history = [algo(1_000, 7, "NEW", "1216"), algo(5_000, 7, "CANCELED", "1216")]
    restored, problems = check_cancels(rig(), history)
    assert restored == 0
    assert len(problems) == 1
    assert "cancelled while BASUSDT:BOTH was open" in problems[0]
    assert check_cancels(rig(cancelled={7}), history) == (0, [])
    flat = [algo(1_000, 7, "NEW", "0"), algo(5_000, 7, "CANCELED", "0")]
    assert check_cancels(rig(), flat) == (0, [])


def test_a_cancel_followed_at_once_by_an_equivalent_stop_counts_as_restored_only_within_the_bound() -> None:
    cancel = algo(5_000, 7, "CANCELED", "1216")
    soon = algo(5_000 + int(BOUNDS.restore_s * 1000), 8, "NEW", "1216")
    assert check_cancels(rig(), [cancel, soon]) == (1, [])
    late = algo(5_001 + int(BOUNDS.restore_s * 1000), 8, "NEW", "1216")
    assert check_cancels(rig(), [cancel, late])[1] != []
    other_price = algo(5_100, 8, "NEW", "1216", trigger="0.0070")
    assert check_cancels(rig(), [cancel, other_price])[1] != []


def test_guard_stops_one_per_side_never_on_a_flat_position_and_orphans_bounded() -> None:
    opened = [position(1_000, "1216")]
    good = [*opened, ours(5_000, 7, "NEW", "1216")]
    assert check_guard(rig(), good, end_ms=60_000) == (1, [])
    twice = [*good, ours(5_100, 8, "NEW", "1216")]
    placed, problems = check_guard(rig(), twice, end_ms=60_000)
    assert placed == 2
    assert len(problems) == 1
    assert "two on one position side" in problems[0]
    flat_ms = int(BOUNDS.guard_flat_s * 1000)
    raced = [*opened, position(5_000, "0"), ours(5_000 + flat_ms - 10, 7, "NEW", "0"),
             ours(6_000, 7, "CANCELED", "0")]
    assert check_guard(rig(), raced, end_ms=60_000)[1] == []  # the close raced it, then reaped
    stale = [*opened, position(5_000, "0"), ours(5_000 + flat_ms + 10, 7, "NEW", "0"),
             ours(6_500, 7, "CANCELED", "0")]
    assert "flat for" in check_guard(rig(), stale, end_ms=60_000)[1][0]
    orphan_ms = int(BOUNDS.guard_orphan_s * 1000)
    left = [*good, position(10_000, "0")]
    assert check_guard(rig(), left, end_ms=10_000 + orphan_ms - 10)[1] == []
    assert "left on a flat position" in check_guard(rig(), left, end_ms=10_000 + orphan_ms + 10)[1][0]
    reaped_late = [*left, ours(10_000 + orphan_ms + 10, 7, "CANCELED", "0")]
    assert check_guard(rig(), reaped_late, end_ms=90_000)[1] != []
    never_open = [ours(5_000, 7, "NEW", "0")]
    assert check_guard(rig(), never_open, end_ms=5_100)[1] != []


def test_a_guard_stop_is_removed_from_an_open_position_only_while_the_bots_stop_covers_it() -> None:
    base = [position(1_000, "1216"), ours(5_000, 7, "NEW", "1216")]
    covered = [*base, algo(6_000, 8, "NEW", "1216"), ours(6_500, 7, "CANCELED", "1216")]
    assert check_guard(rig(), covered, end_ms=60_000) == (1, [])
    bare = [*base, ours(6_500, 7, "CANCELED", "1216")]
    assert "no stop of the bot covered it" in check_guard(rig(), bare, end_ms=60_000)[1][0]
    short = {**algo(6_000, 8, "NEW", "1216"), "qty": "1000"}  # partial: does not cover
    assert check_guard(rig(), [*base, short, ours(6_500, 7, "CANCELED", "1216")], end_ms=60_000)[1]
    # (b) leaves the guard's own stops to (e): not a bot stop cancelled on an open position
    assert check_cancels(rig(), covered) == (0, [])
