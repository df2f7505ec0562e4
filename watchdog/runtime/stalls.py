"""Event-loop stalls: how late the loop woke the timers the daemon already has.

Why: a blocked event loop is a silent failure. Nothing is read, written or logged while it
lasts, and afterwards nothing says it happened: session 7's detection benches saw two 4.2-4.7 s
silences of the whole daemon log, noticed only by reading it (docs/BENCHMARKS.md, "Event-loop
stalls"). A task or thread that wakes on its own to watch the loop would cost the idle
daemon wake-ups (its CPU sits near the 1 % target), so the watch rides on the wake-ups that
already happen.

Rules of this module:
1. No timer of its own. The timers that already run report when they asked to wake and the
   loop's clock when they did: the heartbeat's beat (``loops.run_heartbeat``), the lead task's
   round (``lead_task.py``), the poller's paced wait (``binance/poller.py``) and the ticker's
   timer (``ticker.py``). Only a wake by the timer counts (a wait ended early by an event asked
   nothing of the clock). Lateness = woke - asked, at least 0; with the heartbeat beating every
   second and the lead task every half second, a stall of D seconds shows as at least
   D - 0.5 s at the defaults.
2. A stall: a wake at least ``STALL_S`` late, against both the time it asked for and the end of
   the last stall reported (the loop demonstrably ran then: a wake whose lateness that stall
   explains is no new one). The late wakes of one round (every timer that came due during the
   stall fires in the loop's next round, their tasks resume in the one after) are one stall,
   reported once, after that round: one WARNING naming the worst lateness, every timer late in
   it, and what the process did from the last wake before the stall's first timer was due to
   the stall's end (``Usage``: CPU user and system seconds, voluntary and involuntary context
   switches, major page faults, block I/O, full GC collections). CPU close to the stall's length says the loop
   computed (our code or a GC pause); little CPU and voluntary switches say a blocking call (a
   file or pipe write, DNS, a synchronous client); little of either says the process was not
   run at all (stopped, preempted, or the machine itself paused).
3. Counted for operators (``runtime/metrics.py``): ``loop_stalls_total``, the worst lateness
   since the start (``loop_lateness_max_seconds``) and every measured wake's lateness
   (``loop_lateness_seconds``, a histogram whose counts this module keeps: no metrics
   library call on the wake path). A wake at least ``NOTE_S`` late is a DEBUG line.
4. A stall changes nothing that is published, by decision. While the loop stalls nothing can
   be written, and what bots see degrades without us, on Redis' clock: ``check`` ages each
   position's ``verified_ms`` against ``veto_max_age_ms`` by Redis ``TIME``, and the health
   hash expires after ``health_ttl_ms`` (``watchdog_down``). Once the loop runs again the book
   ages what it holds at the next Tick (core/ageing.py: ``unknown`` past ``max_age_ms``) and
   the next reads re-verify. Marking the daemon degraded after a stall is over would veto bots
   on data as fresh as any; the WARNING and the counter are how it surfaces.
5. ``StallWatch`` is pure (times and usage are passed in); ``LoopStalls`` is the glue on the
   running loop (its clock, ``getrusage``, ``gc.get_stats``, the log). One per process:
   several accounts share it (build.py ``Shared``), so one stall is one WARNING; there each
   account's timers are named with it (``heartbeat[sub-1]``, ``LoopStalls.labelled``).
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import resource
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

# What a timer tells the watch (rule 1): its name and the loop time it asked to wake at.
Woke = Callable[[str, float], None]

__all__ = ["LATENESS_BUCKETS", "NOTE_S", "STALL_S", "LoopStalls", "Stall", "StallWatch", "Usage",
           "process_usage"]

# Rule 2's threshold. Measured (docs/BENCHMARKS.md, "Event-loop stalls"): on the bench's busy
# 2-core VM the watched timers woke at most ~0.1 s late outside the stalls; 0.5 s leaves room
# for a loaded machine and is still well under a poll interval (0.9 s) and max_age_ms (3 s).
STALL_S = 0.5
NOTE_S = 0.05  # rule 3: a DEBUG line from this lateness on
# The lateness histogram's upper bounds (seconds): healthy wakes are sub-millisecond.
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Usage:
    """What the process had used by some moment (cumulative; ``minus`` gives a window's)."""

    user_s: float = 0.0
    system_s: float = 0.0
    voluntary: int = 0  # context switches: waiting for something (I/O, a lock)
    involuntary: int = 0  # preempted: runnable, but another task ran
    major_faults: int = 0
    blocks_in: int = 0
    blocks_out: int = 0
    full_gcs: int = 0  # generation-2 collections

    def minus(self, before: Usage) -> Usage:
        return Usage(self.user_s - before.user_s, self.system_s - before.system_s,
                     self.voluntary - before.voluntary, self.involuntary - before.involuntary,
                     self.major_faults - before.major_faults, self.blocks_in - before.blocks_in,
                     self.blocks_out - before.blocks_out, self.full_gcs - before.full_gcs)

    def describe(self) -> str:
        return (f"cpu_user_s={self.user_s:.3f} cpu_sys_s={self.system_s:.3f} "
                f"ctx_voluntary={self.voluntary} ctx_involuntary={self.involuntary} "
                f"major_faults={self.major_faults} blocks_in={self.blocks_in} "
                f"blocks_out={self.blocks_out} full_gcs={self.full_gcs}")


@dataclass(frozen=True, slots=True)
class Stall:
    """One stall (rule 2), as reported."""

    number: int  # 1 for the first since the start
    late_s: float  # the worst lateness of its wakes
    timer: str  # the timer late by ``late_s``
    timers: tuple[str, ...]  # every timer late in it, in the order they woke
    asked_s: float  # when the worst one asked to wake (loop clock)
    woke_s: float  # when it woke
    window_s: float  # the usage window: from the last wake before it to its end
    used: Usage | None  # what the process did over that window (None: not sampled)


@dataclass
class StallWatch:
    """Rules 1-3's decisions, pure: ``woke`` for every timer wake, ``close`` after the round."""

    stall_s: float = STALL_S
    stalls: int = 0
    worst_s: float = 0.0  # the worst lateness seen since the start
    wakes: int = 0
    late_sum_s: float = 0.0
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BUCKETS) + 1))
    _ended_s: float = float("-inf")  # the end of the last stall reported: the loop ran then
    _samples: deque[tuple[float, Usage]] = field(default_factory=lambda: deque(maxlen=8))
    _open: Stall | None = None  # a stall found in this round, not reported yet
    _open_end_s: float = float("-inf")

    def woke(self, timer: str, asked_s: float, woke_s: float, usage: Usage | None = None) -> bool:
        """A timer asked to wake at ``asked_s`` and woke at ``woke_s`` (the loop's clock);
        ``usage``: sampled now. True when this wake found a stall: report it (``close``) once
        the round is over."""
        late_s = max(0.0, woke_s - asked_s)
        self.wakes += 1
        self.late_sum_s += late_s
        self.counts[bisect.bisect_left(LATENESS_BUCKETS, late_s)] += 1
        self.worst_s = max(self.worst_s, late_s)
        found, opened = self._open, False
        if found is not None:
            if late_s >= self.stall_s:  # another timer late in the same round (rule 2)
                worse = late_s > found.late_s
                self._open = Stall(
                    found.number, max(late_s, found.late_s), timer if worse else found.timer,
                    (*found.timers, timer), asked_s if worse else found.asked_s,
                    woke_s if worse else found.woke_s, found.window_s, found.used)
                self._open_end_s = max(self._open_end_s, woke_s)
        elif woke_s - max(asked_s, self._ended_s) >= self.stall_s:
            self.stalls += 1
            opened = True
            # What the process did since the last wake before this timer was due.
            before = next((s for s in reversed(self._samples) if s[0] <= asked_s), None)
            used = None if usage is None or before is None else usage.minus(before[1])
            window_s = late_s if before is None else woke_s - before[0]
            self._open = Stall(self.stalls, late_s, timer, (timer,), asked_s, woke_s, window_s,
                               used)
            self._open_end_s = woke_s
        if usage is not None:
            self._samples.append((woke_s, usage))
        return opened

    def close(self) -> Stall | None:
        """The stall found in the round just over (None when there is none): report it."""
        found, self._open = self._open, None
        if found is not None:
            self._ended_s = max(self._ended_s, self._open_end_s)
        return found


def process_usage() -> Usage:
    """The process's usage now: one ``getrusage`` and ``gc.get_stats`` (~2 µs)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return Usage(r.ru_utime, r.ru_stime, r.ru_nvcsw, r.ru_nivcsw, r.ru_majflt, r.ru_inblock,
                 r.ru_oublock, gc.get_stats()[2]["collections"])


class LoopStalls:
    """The watch on the running loop (rule 5): the timers call ``woke(name, asked_s)`` right
    after a wake by their timer; a stall is logged once its round is over."""

    def __init__(self, watch: StallWatch | None = None,
                 usage: Callable[[], Usage] = process_usage) -> None:
        self.watch = watch or StallWatch()
        self._usage = usage

    def labelled(self, label: str) -> Woke:
        """``woke`` for one account's timers in a process of several (rule 5): the WARNING
        names ``heartbeat[ACCOUNT]``, not a bare ``heartbeat`` once per account."""
        return lambda timer, asked_s: self.woke(f"{timer}[{label}]", asked_s)

    def woke(self, timer: str, asked_s: float) -> None:
        loop = asyncio.get_running_loop()
        now_s = loop.time()
        if self.watch.woke(timer, asked_s, now_s, self._usage()):
            # The other timers due in the stall resume in this same round: report after them.
            loop.call_soon(self._report)
        elif now_s - asked_s >= NOTE_S:
            logger.debug("event loop woke {} {:.3f}s late", timer, now_s - asked_s)

    def _report(self) -> None:
        stall = self.watch.close()
        if stall is None:
            return
        used = "not sampled (no wake before it)" if stall.used is None else stall.used.describe()
        logger.warning(
            "event loop stalled: {} woke {:.2f}s late (stall {} since the start; late: {}); "
            "over the {:.2f}s since the last wake before it: {}", stall.timer, stall.late_s,
            stall.number, ", ".join(stall.timers), stall.window_s, used)
