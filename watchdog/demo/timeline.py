"""A timeline of what happened in a demo run, with millisecond offsets, for people and for JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from watchdog.clock import Clock, SystemClock

__all__ = ["Timeline"]


@dataclass(slots=True)
class Timeline:
    """Lines recorded as (offset from start in ms, actor, text); printed as they happen.

    Offsets are monotonic time from the timeline's creation, read from ``clock``."""

    title: str
    echo: bool = True
    clock: Clock = field(default_factory=SystemClock)
    lines: list[tuple[int, str, str]] = field(default_factory=list)
    started_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.started_at = self.clock.monotonic()

    def now_ms(self) -> int:
        return int((self.clock.monotonic() - self.started_at) * 1000)

    def add(self, actor: str, text: str) -> int:
        offset = self.now_ms()
        self.lines.append((offset, actor, text))
        if self.echo:
            print(f"  +{offset:6d} ms  {actor:<9} {text}", flush=True)
        return offset

    def header(self) -> None:
        if self.echo:
            print(f"\n=== {self.title} ===", flush=True)
