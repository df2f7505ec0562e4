"""The demo's result: what ``position-watchdog demo --json`` prints, and the closing summary.

Why apart from the scenarios: it is a public contract (the JSON keys), read by people and CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DemoResult", "render_summary"]


@dataclass
class DemoResult:
    """The demo's summary; ``as_json`` is the contract of ``position-watchdog demo --json``."""

    closure_detected_ms: int | None = None
    vetoes: int = 0
    orphans_created_without_watchdog: int = 0
    orphans_left_without_watchdog: int = 0
    orphans_left_with_watchdog: int | None = None
    orphans_removed_by_watchdog: int = 0
    immediate_trigger_errors_without_watchdog: int = 0
    immediate_trigger_errors_with_watchdog: int = 0
    trailing_stop_dropped: bool = False
    unprotected_window_ms: int | None = None
    unprotected_window_without_watchdog_ms: int | None = None
    zero_gap_move: bool = False
    closure_suspected_ms: int | None = None  # stop_crossed (price stream) after the stop fired
    closure_detected_by: str | None = None   # "price_stream" or "rest_poll"
    forgotten_stop_alert_ms: int | None = None      # (c) cancel → position_unprotected
    guard_stop_placed_ms: int | None = None         # (c) cancel → guard_stop_placed
    guard_stop_removed: bool = False                # (c) removed once the bot's stop was back
    timeline: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)

    @property
    def incident_prevented(self) -> bool:
        return (self.orphans_left_with_watchdog == 0 and self.vetoes >= 1
                and self.trailing_stop_dropped and self.immediate_trigger_errors_with_watchdog == 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "incident_prevented": self.incident_prevented,
            "closure_detected_ms": self.closure_detected_ms,
            "vetoes": self.vetoes,
            "orphans_created_without_watchdog": self.orphans_created_without_watchdog,
            "orphans_left_without_watchdog": self.orphans_left_without_watchdog,
            "orphans_left_with_watchdog": self.orphans_left_with_watchdog,
            "orphans_removed_by_watchdog": self.orphans_removed_by_watchdog,
            "immediate_trigger_errors_without_watchdog": self.immediate_trigger_errors_without_watchdog,
            "immediate_trigger_errors_with_watchdog": self.immediate_trigger_errors_with_watchdog,
            "trailing_stop_dropped": self.trailing_stop_dropped,
            "unprotected_window_ms": self.unprotected_window_ms,
            "unprotected_window_without_watchdog_ms": self.unprotected_window_without_watchdog_ms,
            "zero_gap_move": self.zero_gap_move,
            "closure_suspected_ms": self.closure_suspected_ms,
            "closure_detected_by": self.closure_detected_by,
            "forgotten_stop_alert_ms": self.forgotten_stop_alert_ms,
            "guard_stop_placed_ms": self.guard_stop_placed_ms,
            "guard_stop_removed": self.guard_stop_removed,
            "timeline": {name: [{"t_ms": t, "actor": a, "what": w} for t, a, w in lines]
                         for name, lines in self.timeline.items()},
        }


def render_summary(result: DemoResult) -> str:
    """The closing block of the human-readable demo output."""
    verdict = "PREVENTED" if result.incident_prevented else "NOT PREVENTED"
    rows = [
        ("stops created for a closed position, bot alone", result.orphans_created_without_watchdog),
        ("reduce-only orders left on the flat position, bot alone", result.orphans_left_without_watchdog),
        ("-2021 'would immediately trigger', bot alone", result.immediate_trigger_errors_without_watchdog),
        ("closure known to the watchdog after (ms, stream muted)", result.closure_detected_ms),
        ("  stop firing seen on the price stream after (ms)", result.closure_suspected_ms),
        ("  first known from", result.closure_detected_by),
        ("vetoes given to the bot", result.vetoes),
        ("orphans removed by the watchdog", result.orphans_removed_by_watchdog),
        ("orders left on the flat position, with the watchdog", result.orphans_left_with_watchdog),
        ("bot told to drop its trailing stop", "yes" if result.trailing_stop_dropped else "no"),
        ("bot's unprotected window while moving its stop, alone (ms)",
         result.unprotected_window_without_watchdog_ms),
        ("bot's unprotected window while moving its stop, zero-gap (ms)", result.unprotected_window_ms),
        ("forgotten stop: position_unprotected after (ms)", result.forgotten_stop_alert_ms),
        ("forgotten stop: watchdog's last-resort stop after (ms)", result.guard_stop_placed_ms),
        ("watchdog's stop removed once the bot's was back", "yes" if result.guard_stop_removed else "no"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["", "=== summary ==="] + [f"  {label:<{width}}  {value}" for label, value in rows]
    lines.append(f"  incident {verdict}")
    return "\n".join(lines)
