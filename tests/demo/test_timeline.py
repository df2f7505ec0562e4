"""The demo's timeline stamps each line with its offset from the start, on the clock it is given."""

from __future__ import annotations

import pytest

from watchdog.clock import ManualClock
from watchdog.demo.timeline import Timeline


def test_lines_carry_their_offset_from_the_start(capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock(now_s=500.0)
    tl = Timeline("title", clock=clock)
    tl.header()
    assert tl.add("bot", "opens") == 0
    clock.advance(1.5)
    assert tl.add("watchdog", "vetoes") == 1_500
    assert tl.lines == [(0, "bot", "opens"), (1_500, "watchdog", "vetoes")]
    assert capsys.readouterr().out == (
        "\n=== title ===\n"
        "  +     0 ms  bot       opens\n"
        "  +  1500 ms  watchdog  vetoes\n")


def test_a_quiet_timeline_records_without_printing(capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    tl = Timeline("title", echo=False, clock=clock)
    tl.header()
    clock.advance(0.25)
    tl.add("sim", "stop fired")
    assert tl.lines == [(250, "sim", "stop fired")]
    assert capsys.readouterr().out == ""
