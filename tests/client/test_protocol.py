"""poswatch.protocol and poswatch.calls: reasons as a str enum, replies parsed, ccxt symbols in calls."""

from __future__ import annotations

import pytest

from poswatch.calls import VetoCalls
from poswatch.protocol import Reason, Vetoed, parse_verdict, reason_of


def test_reasons_are_strings_and_compare_as_such() -> None:
    verdict = parse_verdict([0, "position_closed", 0, 12, ["state", "closed", "amt", "0"]])
    assert verdict.reason is Reason.POSITION_CLOSED
    assert verdict.reason == "position_closed"
    assert isinstance(verdict.reason, str)
    assert verdict.position == {"state": "closed", "amt": "0"}
    assert verdict.age_ms == 12
    assert verdict.as_json()["reason"] == "position_closed"


def test_a_reason_this_version_does_not_know_stays_a_plain_string() -> None:
    assert reason_of("a_reason_from_the_future") == "a_reason_from_the_future"
    assert not isinstance(reason_of("a_reason_from_the_future"), Reason)
    verdict = parse_verdict([0, "a_reason_from_the_future", 0, -1, []])
    assert verdict.reason == "a_reason_from_the_future"
    assert verdict.age_ms is None


def test_every_reason_the_scripts_reply_is_a_member() -> None:
    from pathlib import Path

    import poswatch

    lua = "\n".join(p.read_text() for p in (Path(poswatch.__file__).parent / "lua").glob("*.lua"))
    for reason in ("watchdog_down", "no_position", "stale", "position_closed", "reaping", "lease_held",
                   "lease_revoked", "unverified", "lease_expired", "lease_lost", "already_released"):
        assert f"'{reason}'" in lua, reason
        assert Reason(reason).value == reason


def test_a_ccxt_symbol_builds_the_same_call_as_the_binance_symbol() -> None:
    calls = VetoCalls("main", max_age_ms=2500)
    for build in (lambda s: calls.check(s, "BOTH"), lambda s: calls.begin(s, "BOTH", "bot", 5000),
                  lambda s: calls.confirm(s, "BOTH", 7), lambda s: calls.end(s, "BOTH", 7, "ok")):
        assert build("BAS/USDT:USDT") == build("BASUSDT")
    script, keys, args = calls.check("BAS/USDT:USDT", "BOTH")
    assert script == "check"
    assert keys[1] == "wd:v1:{main}:pos:BASUSDT:BOTH"
    assert args == ["2500"]


def test_a_side_outside_the_three_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="BOTH, LONG or SHORT"):
        VetoCalls("main").check("BTCUSDT", "long")


def test_vetoed_names_the_operation_and_the_reason() -> None:
    verdict = parse_verdict([0, "stale", 0, -1, []])
    assert str(Vetoed("begin", verdict)) == "begin vetoed: stale (age_ms=None)"


def test_end_carries_the_replace_mode_only_when_asked() -> None:
    calls = VetoCalls("main")
    plain = calls.end("BASUSDT", "BOTH", 7, "ok").args
    replace = calls.end("BASUSDT", "BOTH", 7, "ok", "replace").args
    assert len(plain) == 5  # the old five arguments: plain-Redis bots keep working
    assert replace == [*plain, "replace"]
    with pytest.raises(ValueError, match="replace"):
        calls.end("BASUSDT", "BOTH", 7, "ok", "swap")
