"""What the daemon knows about its own health, next to what the book knows about positions.

Two different questions are answered here, on purpose separately:

- ``health(now)``: is the watchdog *useful* right now? (stream live and proven, REST reads succeeding,
  Redis writable, no position unknown). Anything else is *degraded*, published in the heartbeat,
  in ``STATUS=`` and by ``position-watchdog status``.
- ``keepalive_due(now)``: is the machinery *alive*? (each loop made progress recently). Only this
  gates the systemd keepalive (``WATCHDOG=1``): a restart fixes a hung loop, but it cannot fix
  an exchange or Redis outage, so an outage degrades instead of feeding a restart loop.

The stream state, the last event and the last snapshot are the book's own (``PositionBook``
sees every event), the stream's proof is ``StreamProof``'s (the core loop feeds it); this module
adds only what the core cannot see: Redis, loop progress, consecutive REST failures and the
reaper's count.

Rules of this module:
1. What a beat asks every second is kept while its inputs stay the same, and only then: the
   positions counted by state while the book's ``view_generation`` stays (core/book.py: it
   moves whenever a published view changes in more than ``verified_ms`` and ``version``, and
   only a view's state is counted), the unprotected problem line while the guard alerts the
   same keys. The kept value is the one computed afresh (tests/runtime/test_vitals.py compares
   them after every step of random histories).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from watchdog.core.book import PositionBook
from watchdog.core.events import Event, PositionSnapshot, SnapshotFailed
from watchdog.core.model import PositionKey, PositionState
from watchdog.core.proof import StreamProof
from watchdog.store.heartbeat import UNPROVEN_PROBLEM, Health

__all__ = ["Identity", "Vitals"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is writing the heartbeat."""

    pid: int
    host: str
    version: str
    started_ms: int


@dataclass
class Vitals:
    """Counters and timestamps about the daemon, kept by the daemon's tasks on one event loop.

    ``progress_limit_s`` is how long a loop may go without reporting before the systemd
    keepalive stops; ``weight_used`` reads what the watchdog spent of its ``weight_budget_1m``
    over the last minute, ``ip_weight_used`` the IP's total (``X-MBX-USED-WEIGHT-1M``, the bot
    included); ``orphans_removed`` reads the reaper's count.
    """

    identity: Identity
    book: PositionBook
    weight_budget_1m: int
    progress_limit_s: float
    weight_used: Callable[[], int] = lambda: 0
    ip_weight_used: Callable[[], int] = lambda: 0
    orphans_removed: Callable[[], int] = lambda: 0
    credentials_refused: Callable[[], str] = lambda: ""  # Binance's latest refusal, "" if none
    # Trigger watching (issue 13): informative heartbeat fields, never a problem by themselves
    # (losing the market stream removes a way to doubt; it makes no position look safer).
    trigger_watch: Callable[[], dict[str, str]] = dict
    # The guard's alerted positions and since when (wall ms): core/guard.py rule 3.
    unprotected: Callable[[], tuple[tuple[PositionKey, int], ...]] = lambda: ()
    reaper: str = "off"
    ready: bool = False
    heartbeat_written: bool = False
    snapshot_failures: int = 0
    last_failure: str = ""
    store_error: str = ""
    progress_at: dict[str, float] = field(default_factory=dict)
    proof: StreamProof = field(default_factory=StreamProof)  # fed by the core loop
    _problem_keys: tuple[PositionKey, ...] = field(default=(), repr=False, compare=False)
    _problem_line: str = field(default="", repr=False, compare=False)
    _counts: Counter[PositionState] | None = field(default=None, repr=False, compare=False)
    _counts_of: tuple[PositionBook, int] | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------ observations

    def observe_event(self, event: Event) -> None:
        """Count consecutive REST failures (the book counts them only in total)."""
        if isinstance(event, PositionSnapshot):
            self.snapshot_failures = 0
            self.last_failure = ""
        elif isinstance(event, SnapshotFailed):
            self.snapshot_failures += 1
            self.last_failure = event.reason

    def store_result(self, error: str) -> None:
        """The outcome of the last Redis write: "" for success, else what went wrong."""
        self.store_error = error

    def progressed(self, loop: str, at: float) -> None:
        """A loop (``poller``, ``heartbeat``, …) reported progress at monotonic ``at``."""
        self.progress_at[loop] = at

    # ------------------------------------------------------------ verdicts

    def problems(self, states: Counter[PositionState] | None = None) -> tuple[str, ...]:
        """Why the watchdog is degraded, in the operator's words (empty when healthy).
        ``states``: the positions counted by state, when the caller has them already."""
        states = self._states() if states is None else states
        found: list[str] = []
        if not self.ready:
            found.append("starting: first snapshot not published yet")
        if self.book.stream_state != "live":
            found.append(f"stream {self.book.stream_state}")
        refused = self.credentials_refused()
        if refused:
            found.append(f"Binance rejects the credentials: {refused}; check the API key, "
                         f"secret, futures permission and IP whitelist")
        if self.proof.state == "unproven":
            found.append(UNPROVEN_PROBLEM)
        if self.snapshot_failures:
            found.append(f"REST reads failing ({self.snapshot_failures} in a row: {self.last_failure})")
        if self.store_error:
            found.append(f"redis writes failing: {self.store_error}")
        unknown = states[PositionState.UNKNOWN]
        if unknown:
            found.append(f"{unknown} position(s) unknown")
        unprotected = self.unprotected()
        if unprotected:
            found.append(self._unprotected_problem(tuple(key for key, _ in unprotected)))
        return tuple(found)

    def _unprotected_problem(self, keys: tuple[PositionKey, ...]) -> str:
        """The problem line naming ``keys``; kept while the same keys are alerted. Why: 300
        unprotected positions (the footprint bench) made it 300 ``str(key)`` and a join on every
        heartbeat, ≈ 0.03 % of an idle daemon; the keys are the guard's own objects from beat to
        beat, so comparing the tuples is a C-level identity check."""
        if keys != self._problem_keys:
            self._problem_keys = keys
            self._problem_line = (f"{len(keys)} position(s) unprotected (no covering stop): "
                                  + ", ".join(str(key) for key in keys))
        return self._problem_line

    def keepalive_due(self, now_at: float, loops: tuple[str, ...]) -> bool:
        """True when every named loop reported progress within ``progress_limit_s``."""
        return all(now_at - self.progress_at.get(loop, float("-inf")) <= self.progress_limit_s
                   for loop in loops)

    def health(self, now_ms: int) -> Health:
        """The heartbeat to publish now."""
        states = self._states()  # one pass over the book for the three counts
        problems = self.problems(states)
        return Health(
            pid=self.identity.pid, host=self.identity.host, version=self.identity.version,
            started_ms=self.identity.started_ms, updated_ms=now_ms, ready=self.ready,
            healthy=not problems, problems=problems, stream_state=self.book.stream_state,
            stream_proof=self.proof.state, stream_unproven_since_ms=self.proof.since_ms,
            stream_unproven_reason=self.proof.reason,
            last_event_ms=self.book.last_event_ms or 0,
            last_snapshot_ms=self.book.last_snapshot_ms or 0,
            rest_weight_used_1m=self.weight_used(),
            rest_weight_budget_1m=self.weight_budget_1m, rest_ip_weight_1m=self.ip_weight_used(),
            positions_open=states[PositionState.OPEN],
            positions_unknown=states[PositionState.UNKNOWN],
            orphans_removed=self.orphans_removed(), reaper=self.reaper,
            extra=tuple(sorted(self.trigger_watch().items())),
        )

    def _states(self) -> Counter[PositionState]:
        """The book's ``state_counts()``, kept while its view generation stays (rule 1): 300
        views counted on every beat were half of ``health``. Read only (never changed)."""
        book = self.book
        of = (book, book.view_generation())
        if self._counts is None or self._counts_of is None or self._counts_of[0] is not book \
                or self._counts_of[1] != of[1]:
            self._counts, self._counts_of = book.state_counts(), of
        return self._counts
