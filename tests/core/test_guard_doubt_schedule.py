"""Rule 8's one doubt schedule (core/guard.py): a doubt read is asked at the very instant the
schedule of f357c8c asked it, a per-symbol due time judged at every point of the ticker's grid,
never later; and routine orders reads no longer make the guard want a Tick (rule 5).

The reference below is f357c8c's rule 8 as it ran (``Guard._doubt`` over every open position at
every step, the ticker sending a Tick at every grid point), copied into the test and kept apart
from the guard's bookkeeping: the guard under test is stepped as the daemon's ticker steps it,
at every event and at a grid point only once ``next_due_ms`` has passed.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.reaper_support import KEY, LONG, SHORT, snapshot, view
from tests.core.test_guard_cost import Positions
from watchdog.core.effects import Effect, RequestSnapshot
from watchdog.core.events import SnapshotRequested, StreamConnected, StreamLost, Tick
from watchdog.core.guard import Guard, GuardPolicy
from watchdog.core.model import ZERO, Knowledge, PositionKey, PositionSide, Symbol
from watchdog.core.orders import OrderBook

T0 = 1_000_000
GRID_MS = 250  # [service] tick_interval_s
ETH = PositionKey(Symbol("ETHUSDT"), PositionSide.BOTH)
SOL = PositionKey(Symbol("SOLUSDT"), PositionSide.BOTH)
KEYS = (KEY, LONG, SHORT, ETH, SOL)  # LONG and SHORT: one symbol, both sides


class OldRule8:
    """f357c8c's rule 8, judged on every step: reads stamped at the step that applies them, a
    gap forgets them, a new lead term forgets what was asked, the allowance spans lead terms."""

    def __init__(self, policy: GuardPolicy) -> None:
        self.p = policy
        self.symbol_read: dict[Symbol, int] = {}
        self.all_read: int | None = None
        self.asked: dict[Symbol, int] = {}
        self.reads: deque[int] = deque()
        self.acting = True

    def read_ms(self, symbol: Symbol) -> int | None:
        times = [t for t in (self.symbol_read.get(symbol), self.all_read) if t is not None]
        return max(times, default=None)

    def step(self, positions: Positions, now_ms: int, acting: bool) -> list[tuple[int, Symbol]]:
        if acting != self.acting:
            self.asked.clear()  # a lead term begins or ends (Guard._new_term)
            self.acting = acting
        p = self.p
        if p.doubt_ms <= 0 or not acting:
            return []
        while self.reads and now_ms - self.reads[0] >= 60_000:
            self.reads.popleft()
        allowance = p.doubt_reads_per_min - len(self.reads)
        if allowance <= 0:
            return []
        due: dict[Symbol, int | None] = {}
        for v in positions.views():
            symbol = v.key.symbol
            if v.amount == ZERO or v.knowledge is not Knowledge.CONFIRMED or symbol in due:
                continue
            read, asked = self.read_ms(symbol), self.asked.get(symbol)
            if (read is not None and now_ms - read < p.doubt_ms) or (
                    asked is not None and now_ms - asked < p.doubt_ms):
                continue
            due[symbol] = read

        def unread_longest(symbol: Symbol) -> tuple[int, int, str]:
            read, asked = due[symbol], self.asked.get(symbol)
            return (-1 if read is None else read, -1 if asked is None else asked, symbol)

        chosen = sorted(due, key=unread_longest)[:allowance]
        for symbol in chosen:
            self.asked[symbol] = now_ms
            self.reads.append(now_ms)
        return [(now_ms, symbol) for symbol in chosen]


def asked(effects: list[Effect], now_ms: int) -> list[tuple[int, Symbol]]:
    out: list[tuple[int, Symbol]] = []
    for e in effects:
        if isinstance(e, RequestSnapshot) and e.reason.startswith("guard: orders of"):
            assert e.symbols is not None
            assert len(e.symbols) == 1
            out.append((now_ms, next(iter(e.symbols))))
    return out


ACTIONS = ("wait", "wait", "read", "read", "read", "read_all", "open", "close", "unknown",
           "gap", "lost", "acting")


@settings(max_examples=200, deadline=None)
@given(script=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, len(KEYS) - 1),
                                 st.integers(0, 9000)), max_size=50),
       policy=st.sampled_from((GuardPolicy(doubt_ms=1000, doubt_reads_per_min=1),
                               GuardPolicy(doubt_ms=1500, doubt_reads_per_min=2),
                               GuardPolicy(doubt_ms=2000, doubt_reads_per_min=3),
                               GuardPolicy(doubt_ms=4000, doubt_reads_per_min=4),
                               GuardPolicy(doubt_ms=15_000, doubt_reads_per_min=4))))
def test_a_doubt_read_is_asked_when_the_old_schedule_asked_it(
        script: list[tuple[str, int, int]], policy: GuardPolicy) -> None:
    guard, old = Guard(policy), OldRule8(policy)
    orders = OrderBook()
    positions = Positions({k: view(k, amount=Decimal(5)) for k in KEYS})
    now, next_id, acting = T0, 1, True
    got: list[tuple[int, Symbol]] = []
    want: list[tuple[int, Symbol]] = []

    def feed(event: object) -> None:
        guard.observe(event)  # type: ignore[arg-type]
        orders.apply(event)  # type: ignore[arg-type]

    def step() -> None:
        got.extend(asked(guard.step(positions, orders, None, now, acting=acting),  # type: ignore[arg-type]
                         now))
        want.extend(old.step(positions, now, acting))

    def read(symbols: frozenset[Symbol] | None) -> None:
        nonlocal next_id
        next_id += 1
        feed(SnapshotRequested(next_id, now))
        feed(snapshot(at_ms=now, symbols=symbols, request_id=next_id))
        if symbols is None:
            old.all_read = now
        else:
            old.symbol_read.update(dict.fromkeys(symbols, now))

    def forget_reads() -> None:
        old.symbol_read.clear()
        old.all_read = None

    feed(StreamConnected(1))
    read(None)
    step()
    for action, which, dt in script:
        key, until = KEYS[which], now + dt
        point = (now // GRID_MS + 1) * GRID_MS
        while point < until or (action == "wait" and point == until):
            now = point  # the ticker: a Tick at a grid point once the guard's due time passed
            if (due := guard.next_due_ms()) is not None and due <= now:
                feed(Tick())
                got.extend(asked(guard.step(positions, orders, None, now,  # type: ignore[arg-type]
                                            acting=acting), now))
            want.extend(old.step(positions, now, acting))  # the old grid: every point
            point += GRID_MS
        now = until
        match action:
            case "wait":
                continue
            case "read":
                read(frozenset({key.symbol}))
            case "read_all":
                read(None)
            case "open" | "close" | "unknown":
                amount = ZERO if action == "close" else Decimal(5)
                knowledge = Knowledge.SUSPECT if action == "unknown" else Knowledge.CONFIRMED
                positions.by_key[key] = view(key, amount=-amount if key is SHORT else amount,
                                             knowledge=knowledge)
            case "gap":
                feed(StreamConnected(next_id))
                forget_reads()
            case "lost":
                feed(StreamLost(next_id, "test"))
                forget_reads()
            case "acting":
                acting = not acting
        step()
    assert got == want


def test_routine_orders_reads_leave_the_ticker_idle() -> None:
    """300 open positions, their orders read one symbol every 170 ms by a rotation and the
    stream live: the guard wants a Tick only for the doubt reads its allowance has room for
    (f357c8c: each read's symbol judged 15 s later, between two reads: 140 Ticks in 3 min)."""
    policy = GuardPolicy(doubt_ms=15_000)
    guard, orders = Guard(policy), OrderBook()
    keys = [PositionKey(Symbol(f"S{i:03d}USDT"), PositionSide.BOTH) for i in range(300)]
    positions = Positions({k: view(k, amount=Decimal(10)) for k in keys})
    for event in (StreamConnected(1), SnapshotRequested(1, T0), snapshot(at_ms=T0)):
        guard.observe(event)
        orders.apply(event)
    guard.step(positions, orders, None, T0)  # type: ignore[arg-type]
    ticks, doubt = 0, []
    for ms in range(T0 + 10, T0 + 180_000, 10):
        if ms % 170 == 0:  # a routine read: the next symbol of the rotation
            symbol = keys[(ms - T0) // 170 % 300].symbol
            for event in (SnapshotRequested(ms, ms),
                          snapshot(at_ms=ms, symbols=frozenset({symbol}), request_id=ms)):
                guard.observe(event)
                orders.apply(event)
            doubt += asked(guard.step(positions, orders, None, ms), ms)  # type: ignore[arg-type]
        elif ms % GRID_MS == 0 and (due := guard.next_due_ms()) is not None and due <= ms:
            ticks += 1
            guard.observe(Tick())
            doubt += asked(guard.step(positions, orders, None, ms), ms)  # type: ignore[arg-type]
    # The allowance: 4 at 15 s (every symbol unread since the start's sweep), 4 a minute on.
    assert sorted({t - T0 for t, _ in doubt}) == [15_000, 75_000, 135_000]
    assert len(doubt) == 12
    assert ticks <= 12  # one grid point per room in the allowance at most (f357c8c: 140)
