"""A timeline of what happened in a demo run, with millisecond offsets, for people and for JSON."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Timeline"]


@dataclass(slots=True)
class Timeline:
    """Lines recorded as (offset from start in ms, actor, text); printed as they happen."""

    title: str
    echo: bool = True
    started_at: float = field(default_factory=time.monotonic)
    lines: list[tuple[int, str, str]] = field(default_factory=list)

    def now_ms(self) -> int:
        return int((time.monotonic() - self.started_at) * 1000)

    def add(self, actor: str, text: str) -> int:
        offset = self.now_ms()
        self.lines.append((offset, actor, text))
        if self.echo:
            print(f"  +{offset:6d} ms  {actor:<9} {text}", flush=True)
        return offset

    def header(self) -> None:
        if self.echo:
            print(f"\n=== {self.title} ===", flush=True)
