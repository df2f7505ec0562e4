"""The guard's cost rule (core/guard.py rule 5): judging only what may have changed gives exactly
what judging every position on every step gives, over random histories of events and time."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.reaper_support import KEY, LONG, SHORT, algo_row, algo_update, snapshot, view
from watchdog.core.effects import CancelGuardStop, Effect, PlaceGuardStop
from watchdog.core.events import SnapshotRequested, StreamConnected, StreamLost, Tick
from watchdog.core.guard import GUARD_CLIENT_ID_PREFIX, Guard, GuardOutcome, GuardPolicy, Leases, Told
from watchdog.core.model import (
    ZERO,
    AlgoStatus,
    Knowledge,
    OrderId,
    PositionKey,
    PositionSide,
    PositionView,
    Symbol,
)
from watchdog.core.orders import OrderBook

T0 = 1_000_000
KEYS = (KEY, LONG, SHORT)
LATE = PositionKey(Symbol("ETHUSDT"), PositionSide.BOTH)  # a key the book holds later
SIDE = {KEY: "SELL", LONG: "SELL", SHORT: "BUY", LATE: "SELL"}  # LATE: the guard may stop it too
POLICY = GuardPolicy(alert_ms=2000, emergency_stop_pct=Decimal(3), emergency_after_ms=3000,
                     orders_max_age_ms=5000, leases_max_age_ms=1000, max_orders_per_min=3,
                     retry_ms=2000, doubt_ms=4000)
ONE_A_MIN = GuardPolicy(emergency_stop_pct=Decimal(1), emergency_after_ms=500, alert_ms=0,
                        max_orders_per_min=1, retry_ms=300)
LONG_LEASES = GuardPolicy(emergency_stop_pct=Decimal(2), emergency_after_ms=1000, alert_ms=500,
                          leases_max_age_ms=600_000, lease_cap_ms=4000, max_orders_per_min=4,
                          retry_ms=1000)


class _Views(dict[PositionKey, PositionView]):
    """Counts every view set into it, as the book's ``view_generation`` does (a re-verification
    is set around it, as the book does not count those)."""

    def __init__(self, views: dict[PositionKey, PositionView], owner: Positions) -> None:
        super().__init__(views)
        self._owner = owner

    def __setitem__(self, key: PositionKey, value: PositionView) -> None:
        self._owner.generation += 1
        super().__setitem__(key, value)


@dataclass
class Positions:
    """Sorted by key, as the book's ``views`` are; the generation counts views replaced."""

    by_key: dict[PositionKey, PositionView] = field(default_factory=dict)
    stream_state: str = "live"
    generation: int = 0
    view_calls: int = 0

    def __setattr__(self, name: str, value: object) -> None:
        if name == "by_key":  # a whole new set of views: a new generation
            object.__setattr__(self, "generation", getattr(self, "generation", 0) + 1)
            value = _Views(value, self)  # type: ignore[arg-type]
        object.__setattr__(self, name, value)

    def view_generation(self) -> int | None:
        return self.generation

    def views(self) -> list[PositionView]:
        return [self.by_key[k] for k in sorted(self.by_key, key=lambda k: (k.symbol, k.side))]

    def view(self, key: PositionKey) -> PositionView | None:
        self.view_calls += 1
        return self.by_key.get(key)

    def key_count(self) -> int:
        return len(self.by_key)


ACTIONS = ("tick", "tick", "tick", "quiet", "quiet", "bot_stop", "bot_stop", "bot_cancel",
           "open", "open_big", "close", "unknown", "same_view", "reverify", "gap", "lost", "read",
           "read_all", "stream", "lease", "lease_read", "lease_none", "placed", "placed",
           "failed", "removed", "remove_failed", "own_seen", "own_gone", "acting", "takeover", "appear")


# freshness expiring with the stream not live
@example(script=[("stream", 1, 0), ("tick", 0, 2500), ("tick", 0, 2000), ("tick", 0, 600)],
         policy=POLICY, refresh_ms=None)
# a lease ending after lease_cap_ms: the last-resort stop waits for its end, not the cap
@example(script=[("tick", 0, 0), ("lease", 0, 2500), ("tick", 0, 2000), ("tick", 0, 600)],
         policy=LONG_LEASES, refresh_ms=None)
# the order budget freeing a minute after the first placement
@example(script=[("tick", 0, 0), ("tick", 0, 600), ("lease_read", 0, 59_300), ("tick", 0, 500),
                 ("tick", 0, 300)],
         policy=ONE_A_MIN, refresh_ms=None)
# rule 8's allowance freeing a minute after the first doubt read (the others wait for it)
@example(script=[("tick", 0, 0)] + [("tick", 0, 2500)] * 26,
         policy=GuardPolicy(doubt_ms=1500, doubt_reads_per_min=1), refresh_ms=None)
# a failed placement's hold ending
@example(script=[("tick", 0, 0), ("tick", 0, 1500), ("failed", 0, 10), ("tick", 0, 600), ("tick", 0, 500)],
         policy=LONG_LEASES, refresh_ms=None)
@settings(max_examples=300, deadline=None)
@given(script=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 2),
                                 st.integers(0, 2500)), max_size=60),
       policy=st.sampled_from((POLICY, GuardPolicy(doubt_ms=1500, doubt_reads_per_min=1), ONE_A_MIN,
                              LONG_LEASES)),
       refresh_ms=st.sampled_from((None, 700, 2000, 6000)))
def test_judging_what_changed_equals_judging_everything(
        script: list[tuple[str, int, int]], policy: GuardPolicy, refresh_ms: int | None) -> None:
    """``refresh_ms``: leases re-read that often (the reaper's loop), None: only when told.
    The examples each need one deadline (hypothesis rarely finds them: other changes mask them).
    """
    quick, full = Guard(policy), Guard(policy, incremental=False)
    orders = OrderBook()
    positions = Positions({k: view(k, amount=Decimal(1216)) for k in KEYS})
    now = T0
    next_id = 100
    ends: dict[PositionKey, int] = {}
    leases: Leases | None = Leases({}, now)
    acting = True
    pending: list[PlaceGuardStop | CancelGuardStop] = []
    ours_live: dict[str, tuple[PositionKey, int]] = {}

    def feed(event: object) -> None:
        quick.observe(event)  # type: ignore[arg-type]
        full.observe(event)  # type: ignore[arg-type]
        orders.apply(event)  # type: ignore[arg-type]

    def read(symbols: frozenset[str] | None) -> None:
        nonlocal next_id
        next_id += 1
        feed(SnapshotRequested(next_id, now))
        rows = tuple(algo_row(o.order_id, key=o.key, side=o.side, client_id=o.client_id,
                              close_position=o.close_position)
                     for o in orders.orders() if symbols is None or o.key.symbol in symbols)
        feed(snapshot(algos=rows, at_ms=now, symbols=symbols, request_id=next_id))  # type: ignore[arg-type]

    feed(StreamConnected(1))
    read(None)
    due: int | None = now  # the first step judges all
    for action, which, dt in script:
        key = KEYS[which]
        now += dt
        stepped_leases = leases
        outcomes: tuple[GuardOutcome, ...] = ()
        match action:
            case "tick":
                feed(Tick())
            case "bot_stop":
                next_id += 1
                feed(algo_update(next_id, AlgoStatus.NEW, at_ms=now, key=key, side=SIDE[key]))
            case "bot_cancel":
                for o in orders.orders_for(key):
                    if not o.client_id.startswith(GUARD_CLIENT_ID_PREFIX):
                        feed(algo_update(o.order_id, AlgoStatus.CANCELED, at_ms=now, key=key,
                                         side=o.side, client_id=o.client_id))
            case "open" | "open_big" | "close" | "unknown" | "same_view":
                amount = {"open": Decimal(1216), "open_big": Decimal(5000), "close": ZERO,
                          "unknown": Decimal(1216), "same_view": positions.by_key[key].amount}
                knowledge = (Knowledge.SUSPECT if action == "unknown" else
                             positions.by_key[key].knowledge if action == "same_view"
                             else Knowledge.CONFIRMED)
                amt = amount[action]
                positions.by_key[key] = view(key, amount=-amt if key is SHORT else amt,
                                             knowledge=knowledge)
            case "reverify":  # a positions poll that changed nothing: a new view object,
                old = positions.by_key[key]  # and no new generation (book rule 13)
                dict.__setitem__(positions.by_key, key,
                                 replace(old, verified_ms=now, version=old.version + 1))
            case "gap":
                feed(StreamConnected(next_id))
            case "lost":
                feed(StreamLost(next_id, "test"))
            case "read":
                read(frozenset({key.symbol}))
            case "read_all":
                read(None)
            case "stream":
                positions.stream_state = ("live", "gap", "down")[which]
            case "lease":
                ends = {**ends, key: now + dt}
                leases = Leases(ends, now)
            case "lease_read":
                leases = Leases(ends, now)
            case "lease_none":
                leases = None
            case "placed" | "failed" | "removed" | "remove_failed" if pending:
                order = pending.pop(0)
                if isinstance(order, PlaceGuardStop):
                    next_id += 1
                    if action == "placed":
                        outcomes = (GuardOutcome(order.key, "placed", order.client_id,
                                                 OrderId(next_id)),)
                        ours_live[order.client_id] = (order.key, next_id)
                    else:
                        outcomes = (GuardOutcome(order.key, "place_failed", order.client_id),)
                elif action in ("removed", "placed"):
                    outcomes = (GuardOutcome(order.key, "removed", order.client_id,
                                             order.order_id),)
                    ours_live.pop(order.client_id, None)
                else:
                    outcomes = (GuardOutcome(order.key, "remove_failed", order.client_id,
                                             order.order_id),)
            case "own_seen" if ours_live:
                cid, (k, oid) = next(iter(ours_live.items()))
                feed(algo_update(oid, AlgoStatus.NEW, at_ms=now, key=k, side=SIDE[k],
                                 client_id=cid, close_position=True))
            case "own_gone" if ours_live:
                cid, (k, oid) = ours_live.popitem()
                feed(algo_update(oid, AlgoStatus.CANCELED, at_ms=now, key=k, side=SIDE[k],
                                 client_id=cid))
            case "acting":
                acting = not acting
            case "appear" if LATE not in positions.by_key:
                positions.by_key[LATE] = view(LATE, amount=Decimal(which), knowledge=(
                    Knowledge.SUSPECT if which == 2 else Knowledge.CONFIRMED))
            case "takeover":
                told = {k: Told(now - dt, which == 1) for k in (*KEYS[:which + 1], LATE)}
                quick.take_over(told)
                full.take_over(told)
            case _:
                pass
        if refresh_ms is not None and leases is not None and now - leases.read_ms >= refresh_ms:
            leases = Leases(ends, now)
        got = quick.step(positions, orders, leases, now, outcomes, acting=acting)
        want = full.step(positions, orders, leases, now, outcomes, acting=acting)
        assert got == want, (action, now)
        if action in ("tick", "quiet") and leases is stepped_leases and (due is None or due > now):
            # Nothing but time moved, and not to the due instant: the ticker would have sent no
            # Tick (runtime/ticker.py), so judging every position must find nothing to do.
            assert want == [], (action, now, due)
        due = quick.next_due_ms()
        assert quick.unprotected() == full.unprotected()
        assert quick.answers() == full.answers()
        assert quick.needs_leases == full.needs_leases == needs_leases(quick)
        pending += [e for e in got if isinstance(e, PlaceGuardStop | CancelGuardStop)]


def needs_leases(guard: Guard) -> bool:
    """Rule 3's reading of leases, from the runs themselves (what ``needs_leases`` tracks)."""
    runs = [run for run in guard._runs.values() if run.since_ms is not None]
    if guard.policy.emergency_stop_pct > 0:
        return bool(guard._own or guard._own_seen or runs)
    return bool(guard._own or guard._own_seen or any(not run.alerted for run in runs))


def effects_of_quiet_ticks(guard: Guard, positions: Positions, orders: OrderBook,
                           start: int, ticks: int) -> tuple[list[Effect], int]:
    judged = 0
    effects: list[Effect] = []
    real = guard._judge_open

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal judged
        judged += 1
        return real(*args, **kwargs)

    guard._judge_open = counting  # type: ignore[method-assign]
    for i in range(ticks):
        guard.observe(Tick())
        effects += guard.step(positions, orders, Leases({}, start), start + 250 * (i + 1))
    return effects, judged


def alerted_300() -> tuple[Guard, OrderBook, Positions]:
    """300 open positions, every orders list read once, 3 s on: each run alerted."""
    guard = Guard(GuardPolicy(doubt_ms=15_000))
    orders = OrderBook()
    keys = [PositionKey(f"S{i:03d}USDT", KEY.side) for i in range(300)]  # type: ignore[arg-type]
    positions = Positions({k: view(k, amount=Decimal(10)) for k in keys})
    for event in (StreamConnected(1), SnapshotRequested(1, T0 - 10), snapshot(at_ms=T0 - 10)):
        guard.observe(event)  # type: ignore[arg-type]
        orders.apply(event)  # type: ignore[arg-type]
    guard.step(positions, orders, Leases({}, T0), T0)
    guard.step(positions, orders, Leases({}, T0), T0 + 3000)  # every run alerted now
    return guard, orders, positions


def test_a_calm_tick_judges_no_position() -> None:
    """300 open, alerted positions and nothing happening: ticks judge none of them, and the
    doubt reads coming due (rule 8, one schedule for all symbols) judge none either."""
    guard, orders, positions = alerted_300()
    effects, judged = effects_of_quiet_ticks(guard, positions, orders, T0 + 3000, 40)
    assert effects == []
    assert judged == 0  # 10 s of ticks
    assert guard.next_due_ms() == T0 + 15_000  # the doubt reads, 15 s after the read applied
    effects, judged = effects_of_quiet_ticks(guard, positions, orders, T0 + 13_000, 40)
    assert judged == 0  # a doubt read reads no judgment
    assert len(effects) == 4  # rule 8: doubt_reads_per_min; the rest when it frees
    asked = T0 + 15_000  # a grid point
    assert guard.next_due_ms() == asked + 60_000  # the allowance's room, nothing before



def test_a_poll_that_only_reverifies_judges_no_position() -> None:
    """After every positions poll the book replaces each of 300 views with one that only moves
    ``verified_ms`` and ``version``: nothing a judgment reads changed, so none is judged (and
    nothing is said); a view whose amount changed is judged."""
    guard, orders, positions = alerted_300()
    for poll in range(1, 4):
        positions.by_key = {k: replace(v, verified_ms=T0 + 3000 + poll, version=v.version + 1)
                            for k, v in positions.by_key.items()}
        effects, judged = effects_of_quiet_ticks(guard, positions, orders, T0 + 3000 * poll, 1)
        assert (effects, judged) == ([], 0)
    key = list(positions.by_key)[7]
    positions.by_key[key] = replace(positions.by_key[key], amount=Decimal(11))
    _, judged = effects_of_quiet_ticks(guard, positions, orders, T0 + 12_000, 1)
    assert judged == 1


def test_a_calm_step_compares_no_view() -> None:
    """While the book replaced no view (its generation unchanged), a Tick reads no view at all;
    one replaced view is seen (and, when a judgment reads its change, judged) at the next step."""
    guard = Guard(GuardPolicy(doubt_ms=15_000))
    orders = OrderBook()
    keys = [PositionKey(f"S{i:03d}USDT", KEY.side) for i in range(300)]  # type: ignore[arg-type]
    positions = Positions({k: view(k, amount=Decimal(10)) for k in keys})
    for event in (StreamConnected(1), SnapshotRequested(1, T0 - 10), snapshot(at_ms=T0 - 10)):
        guard.observe(event)
        orders.apply(event)
    guard.step(positions, orders, Leases({}, T0), T0)  # type: ignore[arg-type]
    guard.step(positions, orders, Leases({}, T0), T0 + 3000)  # type: ignore[arg-type]
    positions.view_calls = 0
    effects, judged = effects_of_quiet_ticks(guard, positions, orders, T0 + 3000, 10)
    assert (effects, judged, positions.view_calls) == ([], 0, 0)
    key = list(positions.by_key)[7]
    positions.by_key[key] = replace(positions.by_key[key], amount=Decimal(11))
    _, judged = effects_of_quiet_ticks(guard, positions, orders, T0 + 6000, 1)
    assert judged == 1
    assert positions.view_calls >= 300  # the generation moved: every held view compared
    positions.view_calls = 0
    _, judged = effects_of_quiet_ticks(guard, positions, orders, T0 + 6500, 1)
    assert (judged, positions.view_calls) == (0, 0)
