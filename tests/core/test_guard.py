"""The guard's runs, alert grace, leases and last-resort stop (core/guard.py rules 1-4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.reaper_support import BAS, KEY, algo_row, algo_update, snapshot, view
from watchdog.core.effects import (
    CancelGuardStop,
    Effect,
    Notify,
    PlaceGuardStop,
    PublishProtection,
    RequestSnapshot,
)
from watchdog.core.events import OrdersSnapshot, SnapshotRequested, StreamConnected
from watchdog.core.guard import GUARD_CLIENT_ID_PREFIX, Guard, GuardOutcome, GuardPolicy, Leases, Told
from watchdog.core.model import ZERO, AlgoStatus, Knowledge, OrderId, PositionKey, PositionView, Symbol
from watchdog.core.orders import OrderBook

AMT = Decimal(1216)
T0 = 1_000_000


@dataclass
class Positions:
    by_key: dict[PositionKey, PositionView] = field(default_factory=dict)
    stream_state: str = "live"

    def views(self) -> list[PositionView]:
        return list(self.by_key.values())

    def view(self, key: PositionKey) -> PositionView | None:
        return self.by_key.get(key)

    def key_count(self) -> int:
        return len(self.by_key)

    def view_generation(self) -> int | None:
        return None  # not counted: tests replace views in place


def no_leases(now_ms: int) -> Leases:
    return Leases({}, now_ms)


class Rig:
    """A guard with a live stream, orders read once after the gap, and one open position."""

    def __init__(self, policy: GuardPolicy | None = None, *, stop: bool = True) -> None:
        self.guard = Guard(policy or GuardPolicy())
        self.orders = OrderBook()
        self.positions = Positions({KEY: view(KEY, amount=AMT)})
        self.feed(StreamConnected(1))
        self.feed(SnapshotRequested(1, T0 - 500))
        algos = (algo_row(1, created_ms=T0 - 400),) if stop else ()
        self.feed(snapshot(algos=algos, at_ms=T0 - 400, symbols=frozenset({BAS})))

    def feed(self, event: object) -> None:
        self.guard.observe(event)  # type: ignore[arg-type]
        self.orders.apply(event)  # type: ignore[arg-type]

    def step(self, now_ms: int, leases: Leases | None = None, outcomes: tuple[GuardOutcome, ...] = ()
             ) -> list[Effect]:
        return self.guard.step(self.positions, self.orders,
                               no_leases(now_ms) if leases is None else leases, now_ms, outcomes)

    def cancel_stop(self, at_ms: int) -> None:
        self.feed(algo_update(1, AlgoStatus.CANCELED, at_ms=at_ms))


def kinds(effects: list[Effect]) -> list[str]:
    return [e.kind for e in effects if isinstance(e, Notify)]


def protections(effects: list[Effect]) -> list[PublishProtection]:
    return [e for e in effects if isinstance(e, PublishProtection)]


def test_covered_then_none_publishes_the_run_and_alerts_after_the_grace_not_before() -> None:
    rig = Rig(GuardPolicy(alert_ms=3000))
    assert protections(rig.step(T0)) == [PublishProtection(KEY, "covered", None, "")]
    rig.cancel_stop(T0 + 10)
    assert protections(rig.step(T0 + 20)) == [PublishProtection(KEY, "none", T0 + 20, "")]
    assert kinds(rig.step(T0 + 20 + 2999)) == []
    effects = rig.step(T0 + 20 + 3000)
    assert kinds(effects) == ["position_unprotected"]
    assert kinds(rig.step(T0 + 20 + 9000)) == []  # once per run
    assert rig.guard.unprotected() == ((KEY, T0 + 20),)
    rig.feed(algo_update(2, AlgoStatus.NEW, at_ms=T0 + 9100))
    effects = rig.step(T0 + 9200)
    assert kinds(effects) == ["position_protected"]
    assert protections(effects) == [PublishProtection(KEY, "covered", None, "")]
    assert rig.guard.unprotected() == ()


def test_a_quick_replacement_raises_nothing() -> None:
    rig = Rig()
    rig.step(T0)
    rig.cancel_stop(T0 + 10)
    rig.step(T0 + 20)
    rig.feed(algo_update(2, AlgoStatus.NEW, at_ms=T0 + 1400))  # the incident's 1.4 s
    effects = rig.step(T0 + 1420)
    assert kinds(effects) == []
    assert protections(effects)[0].protection == "covered"
    assert kinds(rig.step(T0 + 10_000)) == []


def test_unknown_until_orders_are_read_after_the_gap_and_when_knowledge_is_not_confirmed() -> None:
    rig = Rig()
    rig.feed(StreamConnected(2))  # a gap: the orders read before it no longer counts
    assert protections(rig.step(T0)) == [PublishProtection(KEY, "unknown", None, "")]
    assert kinds(rig.step(T0 + 60_000)) == []
    rig.feed(SnapshotRequested(2, T0 + 60_001))
    rig.feed(snapshot(at_ms=T0 + 60_000, symbols=frozenset({BAS})))  # requested before: no
    assert protections(rig.step(T0 + 60_010)) == []
    rig.feed(snapshot(at_ms=T0 + 60_002, symbols=frozenset({BAS})))
    assert protections(rig.step(T0 + 60_020)) == [PublishProtection(KEY, "none", T0 + 60_020, "")]
    rig.positions.by_key[KEY] = view(KEY, amount=AMT, knowledge=Knowledge.SUSPECT)
    assert protections(rig.step(T0 + 60_030)) == [PublishProtection(KEY, "unknown", None, "")]
    assert kinds(rig.step(T0 + 90_000)) == []  # no alert on unknown


def test_stream_not_live_needs_a_recent_orders_read() -> None:
    rig = Rig(GuardPolicy(orders_max_age_ms=15_000))
    rig.step(T0)
    rig.positions.stream_state = "down"
    assert protections(rig.step(T0 + 14_000)) == []
    assert protections(rig.step(T0 + 16_000)) == [PublishProtection(KEY, "unknown", None, "")]


def test_a_lease_extends_the_grace_to_its_end_and_no_further() -> None:
    rig = Rig(GuardPolicy(alert_ms=3000))
    rig.step(T0)
    rig.cancel_stop(T0)
    lease = Leases({KEY: T0 + 8000}, T0 + 100)
    rig.step(T0 + 100, lease)  # since = T0 + 100
    assert kinds(rig.step(T0 + 3500, Leases({KEY: T0 + 8000}, T0 + 3400))) == []
    assert kinds(rig.step(T0 + 7999, Leases({}, T0 + 7900))) == []  # ended early: still its end
    assert kinds(rig.step(T0 + 8000, Leases({}, T0 + 7950))) == ["position_unprotected"]


def test_a_lease_cannot_extend_the_grace_forever() -> None:
    rig = Rig(GuardPolicy(alert_ms=3000, lease_cap_ms=20_000))
    rig.step(T0)
    rig.cancel_stop(T0)
    rig.step(T0 + 100, Leases({KEY: T0 + 10**9}, T0 + 100))
    assert kinds(rig.step(T0 + 20_099, Leases({KEY: T0 + 10**9}, T0 + 20_000))) == []
    assert kinds(rig.step(T0 + 20_100, Leases({KEY: T0 + 10**9}, T0 + 20_050))) == [
        "position_unprotected"]


def test_the_alert_waits_for_leases_read_after_the_run_began_unless_unreadable() -> None:
    rig = Rig(GuardPolicy(alert_ms=1000))
    rig.step(T0)
    rig.cancel_stop(T0)
    rig.step(T0 + 100, Leases({}, T0))
    assert kinds(rig.step(T0 + 5000, Leases({}, T0 + 50))) == []  # read before the run
    assert kinds(rig.guard.step(rig.positions, rig.orders, None, T0 + 5100)) == [
        "position_unprotected"]


def test_partial_is_unprotected_too() -> None:
    rig = Rig(GuardPolicy(alert_ms=1000))
    rig.positions.by_key[KEY] = view(KEY, amount=Decimal(5000))  # stop is for 1216
    assert protections(rig.step(T0)) == [PublishProtection(KEY, "partial", T0, "")]
    assert kinds(rig.step(T0 + 1000)) == ["position_unprotected"]


def test_closing_ends_the_run_and_removes_the_fields() -> None:
    rig = Rig(GuardPolicy(alert_ms=1000), stop=False)
    rig.step(T0)
    assert kinds(rig.step(T0 + 1000)) == ["position_unprotected"]
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    effects = rig.step(T0 + 2000)
    assert kinds(effects) == ["position_protected"]
    assert protections(effects) == [PublishProtection(KEY, "", None, "")]
    assert rig.step(T0 + 3000) == []


# ---------------------------------------------------------------- the last-resort stop

GUARDED = GuardPolicy(alert_ms=1000, emergency_stop_pct=Decimal(5), emergency_after_ms=4000)


def places(effects: list[Effect]) -> list[PlaceGuardStop]:
    return [e for e in effects if isinstance(e, PlaceGuardStop)]


def test_off_by_default() -> None:
    rig = Rig(stop=False)
    for t in range(0, 120_000, 500):
        assert places(rig.step(T0 + t)) == []


def test_placed_after_emergency_after_ms_once_then_removed_when_the_bot_covers() -> None:
    rig = Rig(GUARDED, stop=False)
    rig.step(T0)
    assert places(rig.step(T0 + 3999)) == []
    effects = rig.step(T0 + 4000)
    placed = places(effects)
    assert len(placed) == 1
    assert placed[0].side == "SELL"
    assert placed[0].stop_pct == 5
    cid = placed[0].client_id
    assert cid.startswith(GUARD_CLIENT_ID_PREFIX)
    assert len(cid) <= 36
    assert protections(effects) == [PublishProtection(KEY, "none", T0, cid)]
    assert places(rig.step(T0 + 4100)) == []  # placing: never a second
    rig.step(T0 + 4200, outcomes=(GuardOutcome(KEY, "placed", cid, OrderId(77)),))
    rig.feed(algo_update(77, AlgoStatus.NEW, at_ms=T0 + 4300, client_id=cid,
                         close_position=True))
    effects = rig.step(T0 + 4400)
    assert kinds(effects) == ["position_protected"]
    assert protections(effects) == [PublishProtection(KEY, "covered", None, cid)]
    assert places(rig.step(T0 + 60_000)) == []
    rig.feed(algo_update(5, AlgoStatus.NEW, at_ms=T0 + 61_000))  # the bot's own stop is back
    cancels = [e for e in rig.step(T0 + 61_100) if isinstance(e, CancelGuardStop)]
    assert cancels == [CancelGuardStop(KEY, OrderId(77), True, cid,
                                       "the bot's own stop covers the position again")]
    assert [e for e in rig.step(T0 + 61_200) if isinstance(e, CancelGuardStop)] == []
    rig.feed(algo_update(77, AlgoStatus.CANCELED, at_ms=T0 + 61_300, client_id=cid))
    effects = rig.step(T0 + 61_400, outcomes=(GuardOutcome(KEY, "removed", cid, OrderId(77)),))
    assert protections(effects) == [PublishProtection(KEY, "covered", None, "")]


def test_never_while_a_lease_is_held_or_leases_are_unknown_or_stale() -> None:
    rig = Rig(GUARDED, stop=False)
    rig.step(T0)
    assert places(rig.step(T0 + 5000, Leases({KEY: T0 + 9000}, T0 + 5000))) == []
    assert places(rig.guard.step(rig.positions, rig.orders, None, T0 + 9500)) == []
    assert places(rig.step(T0 + 9600, Leases({}, T0 + 8000))) == []  # read 1.6 s ago
    assert len(places(rig.step(T0 + 9700, Leases({}, T0 + 9650)))) == 1


def test_never_for_a_closed_or_unknown_position() -> None:
    rig = Rig(GUARDED, stop=False)
    rig.step(T0)
    rig.positions.by_key[KEY] = view(KEY, amount=AMT, knowledge=Knowledge.EXPIRED)
    assert places(rig.step(T0 + 10_000)) == []
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    assert places(rig.step(T0 + 20_000)) == []
    rig.positions.stream_state = "gap"
    rig.positions.by_key[KEY] = view(KEY, amount=AMT)
    rig.feed(StreamConnected(3))  # orders not known fresh
    assert places(rig.step(T0 + 40_000)) == []


def test_a_failed_placement_is_retried_later_within_the_budget() -> None:
    rig = Rig(GuardPolicy(emergency_stop_pct=Decimal(2), emergency_after_ms=0, retry_ms=5000,
                          max_orders_per_min=3), stop=False)
    t = T0
    placed = 0
    while t < T0 + 59_000:
        for p in places(rig.step(t)):
            placed += 1
            rig.step(t + 1, outcomes=(GuardOutcome(KEY, "place_failed", p.client_id),))
        t += 250
    assert placed == 3


@settings(max_examples=150, deadline=None)
@given(script=st.lists(st.tuples(
    st.sampled_from(("tick", "tick", "tick", "bot_stop", "bot_cancel", "close", "open", "unknown",
                     "gap", "read", "lease", "placed", "placed", "placed", "failed", "own_seen",
                     "own_seen", "own_gone")),
    st.integers(1, 3000)), max_size=40))
@example(script=[("tick", 3000), ("tick", 3000), ("placed", 1), ("own_seen", 1), ("bot_stop", 1),
                 ("tick", 100), ("own_gone", 1), ("bot_cancel", 1), ("tick", 3000),
                 ("tick", 3000)])
def test_safety_invariants_over_random_histories(script: list[tuple[str, int]]) -> None:
    """Never two stops of ours on one side, never one placed for a position not open and
    fresh, never an alert before the grace."""
    policy = GuardPolicy(alert_ms=2000, emergency_stop_pct=Decimal(3), emergency_after_ms=3000)
    rig = Rig(policy, stop=False)
    now = T0
    lease: dict[PositionKey, int] = {}
    pending: list[PlaceGuardStop] = []
    ours_live: dict[str, int] = {}
    next_id = 100
    for action, dt in script:
        now += dt
        outcomes: tuple[GuardOutcome, ...] = ()
        match action:
            case "bot_stop":
                next_id += 1
                rig.feed(algo_update(next_id, AlgoStatus.NEW, at_ms=now))
            case "bot_cancel":
                for o in rig.orders.orders_for(KEY):
                    if not o.client_id.startswith(GUARD_CLIENT_ID_PREFIX):
                        rig.feed(algo_update(o.order_id, AlgoStatus.CANCELED, at_ms=now))
            case "close":
                rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
            case "open":
                rig.positions.by_key[KEY] = view(KEY, amount=AMT)
            case "unknown":
                rig.positions.by_key[KEY] = view(KEY, amount=AMT, knowledge=Knowledge.SUSPECT)
            case "gap":
                rig.feed(StreamConnected(9))
            case "read":
                rig.feed(SnapshotRequested(next_id, now))
                rig.feed(snapshot(algos=tuple(algo_row(o.order_id, client_id=o.client_id)
                                              for o in rig.orders.orders_for(KEY)),
                                  at_ms=now, symbols=frozenset({BAS})))
            case "lease":
                lease = {KEY: now + 2000}
            case "placed" if pending:
                p = pending.pop(0)
                next_id += 1
                outcomes = (GuardOutcome(KEY, "placed", p.client_id, OrderId(next_id)),)
                ours_live[p.client_id] = next_id
            case "failed" if pending:
                p = pending.pop(0)
                outcomes = (GuardOutcome(KEY, "place_failed", p.client_id),)
            case "own_seen" if ours_live:
                cid, oid = next(iter(ours_live.items()))
                rig.feed(algo_update(oid, AlgoStatus.NEW, at_ms=now, client_id=cid,
                                     close_position=True))
            case "own_gone" if ours_live:
                cid, oid = ours_live.popitem()
                rig.feed(algo_update(oid, AlgoStatus.CANCELED, at_ms=now, client_id=cid))
            case _:
                pass
        before = rig.positions.by_key[KEY]
        effects = rig.step(now, Leases(lease, now), outcomes)
        fresh = rig.guard.orders_fresh(BAS, rig.positions.stream_state, now)  # as step judged
        for e in effects:
            if isinstance(e, PlaceGuardStop):
                assert before.state.value == "open"
                assert before.knowledge is Knowledge.CONFIRMED
                assert fresh
                assert not (KEY in lease and lease[KEY] > now)
                assert not pending, "a second stop while one is being placed"
                own_in_book = [o for o in rig.orders.orders_for(KEY)
                               if o.client_id.startswith(GUARD_CLIENT_ID_PREFIX)]
                assert not own_in_book
                pending.append(e)
            if isinstance(e, CancelGuardStop) and e.if_flat:  # rule 4b: only once closed
                assert before.state.value == "closed", "ours removed from an open position"
                assert before.knowledge is Knowledge.CONFIRMED
                assert not (KEY in lease and lease[KEY] > now)
            elif isinstance(e, CancelGuardStop):
                bot_covered = [o for o in rig.orders.orders_for(KEY)
                               if not o.client_id.startswith(GUARD_CLIENT_ID_PREFIX)]
                assert bot_covered, "ours removed while the bot has no stop"
                assert before.state.value == "open"
                assert before.knowledge is Knowledge.CONFIRMED
                assert fresh
                assert not (KEY in lease and lease[KEY] > now)
            if isinstance(e, Notify) and e.kind == "position_unprotected":
                detail = dict(e.detail)
                assert now - int(detail["unprotected_since_ms"]) >= policy.alert_ms


def test_the_reaper_prefix_filter_does_not_skip_our_last_resort_stop() -> None:
    """A closed position's last-resort stop is an orphan like any other, even when the reaper
    only touches the bot's prefix (core/reaper.py rule 1)."""
    from tests.core.reaper_support import StubPositions
    from watchdog.config import ReaperConfig
    from watchdog.core.reaper import Why, decide

    orders = OrderBook()
    orders.apply(snapshot(algos=(algo_row(1, client_id=f"{GUARD_CLIENT_ID_PREFIX}1-1",
                                          reduce_only=False, close_position=True),
                                 algo_row(2, client_id="other-sl")),
                          at_ms=1_500, symbols=frozenset({BAS})))
    positions = StubPositions().set_flat(KEY, 1_000)
    decision = decide(positions, orders, frozenset(), 0, 10_000,
                      ReaperConfig(grace_ms=2000, client_id_prefix="bot-").policy(max_rest_lag_ms=2000))
    verdicts = {a.order.order_id: a.why for a in decision.assessments}
    assert verdicts == {1: Why.ORPHAN, 2: Why.PREFIX_MISMATCH}


def test_a_removed_stop_still_in_the_book_is_not_removed_twice_nor_counted() -> None:
    """The removal is acknowledged before the book hears of it (a slow or muted stream)."""
    rig = Rig(GUARDED, stop=False)
    rig.step(T0)
    cid = places(rig.step(T0 + 4000))[0].client_id
    rig.step(T0 + 4100, outcomes=(GuardOutcome(KEY, "placed", cid, OrderId(77)),))
    rig.feed(algo_update(77, AlgoStatus.NEW, at_ms=T0 + 4200, client_id=cid, close_position=True))
    rig.step(T0 + 4300)
    rig.feed(algo_update(5, AlgoStatus.NEW, at_ms=T0 + 5000))  # the bot's stop is back
    assert len([e for e in rig.step(T0 + 5100) if isinstance(e, CancelGuardStop)]) == 1
    effects = rig.step(T0 + 5200, outcomes=(GuardOutcome(KEY, "removed", cid, OrderId(77)),))
    assert protections(effects) == [PublishProtection(KEY, "covered", None, "")]
    for t in range(5300, 70_000, 700):
        assert [e for e in rig.step(T0 + t) if isinstance(e, CancelGuardStop)] == []
    rig.feed(algo_update(5, AlgoStatus.CANCELED, at_ms=T0 + 70_000))  # the bot's stop goes
    effects = rig.step(T0 + 70_100)
    assert protections(effects) == [PublishProtection(KEY, "none", T0 + 70_100, "")]


def test_without_a_live_stream_a_run_needs_a_later_read_before_anything_is_done() -> None:
    """The read that started the run may predate a stop placed while no stream could report it
    (a startup): the alert and the last-resort stop wait for a read applied after the run."""
    rig = Rig(GUARDED, stop=False)
    rig.positions.stream_state = "down"
    rig.step(T0)  # none, from the read taken at startup
    assert kinds(rig.step(T0 + 9000)) == []
    assert places(rig.step(T0 + 9100)) == []
    rig.feed(snapshot(at_ms=T0 + 9150, symbols=frozenset({BAS}), request_id=2))
    effects = rig.step(T0 + 9200)  # still none by a read after the run began: act
    assert kinds(effects) == ["position_unprotected"]
    assert len(places(effects)) == 1


def test_a_standby_judges_and_alerts_but_never_places_nor_removes_nor_spends_the_budget() -> None:
    """Rule 6 (docs/HA.md): only the leader touches orders; after a takeover it acts at once."""
    rig = Rig(GUARDED, stop=False)
    told: list[str] = []
    for t in range(0, 120_000, 500):
        effects = rig.guard.step(rig.positions, rig.orders, no_leases(T0 + t), T0 + t, (),
                                 acting=False)
        assert [e for e in effects if isinstance(e, PlaceGuardStop | CancelGuardStop)] == []
        told += kinds(effects)
    assert told == ["position_unprotected"]  # judged as on the leader (its writes are dropped)
    # Led now: the budget is whole (the standby spent none), the stop goes at once.
    rig2 = Rig(GUARDED, stop=False)
    for t in range(0, 10_000, 500):
        rig2.guard.step(rig2.positions, rig2.orders, no_leases(T0 + t), T0 + t, (), acting=False)
    placed = places(rig2.step(T0 + 10_000))
    assert len(placed) == 1
    # A stop of ours in the book while the bot covers again: a standby leaves it alone.
    cid = placed[0].client_id
    rig2.step(T0 + 10_100, outcomes=(GuardOutcome(KEY, "placed", cid, OrderId(77)),))
    rig2.feed(algo_update(77, AlgoStatus.NEW, at_ms=T0 + 10_200, client_id=cid,
                          close_position=True))
    rig2.feed(algo_update(5, AlgoStatus.NEW, at_ms=T0 + 10_300))  # the bot's own stop is back
    for t in range(10_400, 30_000, 500):
        effects = rig2.guard.step(rig2.positions, rig2.orders, no_leases(T0 + t), T0 + t, (),
                                  acting=False)
        assert [e for e in effects if isinstance(e, CancelGuardStop)] == []
    # Leading again: ours goes only once a read of this lead term shows the bot's stop
    # (rule 1c: what the stream told a standby is no proof to remove protection on).
    assert [e for e in rig2.step(T0 + 30_000) if isinstance(e, CancelGuardStop)] == []
    rig2.feed(snapshot(algos=(algo_row(5), algo_row(77, client_id=cid, close_position=True)),
                       at_ms=T0 + 30_050, symbols=frozenset({BAS}), request_id=3))
    assert [e for e in rig2.step(T0 + 30_100) if isinstance(e, CancelGuardStop)] != []


# ---------------------------------------------------------------- rule 7: a takeover


def standby_alerted(policy: GuardPolicy | None = None) -> Rig:
    """A standby (``acting=False``) whose guard alerted on a cancelled stop: the Notify was
    dropped by its fenced publisher."""
    rig = Rig(policy)
    rig.guard.step(rig.positions, rig.orders, no_leases(T0), T0, (), acting=False)
    rig.cancel_stop(T0 + 10)
    rig.guard.step(rig.positions, rig.orders, no_leases(T0 + 20), T0 + 20, (), acting=False)
    effects = rig.guard.step(rig.positions, rig.orders, no_leases(T0 + 3100), T0 + 3100, (),
                             acting=False)
    assert kinds(effects) == ["position_unprotected"]
    return rig


def test_an_alert_computed_as_a_standby_is_sent_again_after_a_takeover_unless_redis_shows_it() -> None:
    rig = standby_alerted()
    rig.guard.take_over({})  # Redis shows no alert: the old leader never told it
    effects = rig.step(T0 + 5000)
    assert kinds(effects) == ["position_unprotected"]
    alert = next(e for e in effects if isinstance(e, Notify))
    assert dict(alert.detail)["unprotected_since_ms"] == str(T0 + 20)  # the run keeps its start
    assert kinds(rig.step(T0 + 6000)) == []  # once
    told = standby_alerted()
    told.guard.take_over({KEY: Told(T0 - 50, alerted=True)})  # the old leader told it
    assert kinds(told.step(T0 + 5000)) == []
    assert told.guard.unprotected() == ((KEY, T0 - 50),)  # still a problem, the told start


def test_after_a_takeover_the_alert_waits_for_a_lease_read_taken_since() -> None:
    """Rule 3: an alerted run reads no leases, so none are read while every run is alerted;
    a takeover that finds the alert untold must not judge it on a lease set read before: the
    bot may have begun moving its stop meanwhile (here a lease until T0 + 9000)."""
    rig = standby_alerted()
    assert rig.guard.needs_leases is False  # every run alerted, no last-resort stop
    old = no_leases(T0 + 3100)  # the last read before the reads stopped
    rig.guard.take_over({})
    assert kinds(rig.step(T0 + 6000, old)) == []  # not on the old read
    assert rig.guard.needs_leases is True
    fresh = Leases({KEY: T0 + 9000}, T0 + 6100)
    assert kinds(rig.step(T0 + 6100, fresh)) == []  # the bot's lease extends the grace
    assert kinds(rig.step(T0 + 9000, fresh)) == ["position_unprotected"]


def test_leases_are_needed_while_a_judgment_reads_them() -> None:
    rig = Rig()
    rig.step(T0)
    assert rig.guard.needs_leases is False  # covered: no run
    rig.cancel_stop(T0 + 10)
    rig.step(T0 + 20)
    assert rig.guard.needs_leases is True  # in its grace: a lease may extend it
    assert kinds(rig.step(T0 + 3100)) == ["position_unprotected"]
    assert rig.guard.needs_leases is False  # alerted: nothing waits for a lease
    armed = Rig(GuardPolicy(emergency_stop_pct=Decimal(2), emergency_after_ms=5000))
    armed.step(T0)
    armed.cancel_stop(T0 + 10)
    armed.step(T0 + 20)
    assert kinds(armed.step(T0 + 3100)) == ["position_unprotected"]
    assert armed.guard.needs_leases is True  # the last-resort stop waits for leases


def test_a_position_first_judged_after_a_takeover_continues_the_told_run() -> None:
    rig = Rig(stop=False)  # the bot's stop is gone; this instance has not judged it yet
    rig.guard.take_over({KEY: Told(T0 - 60_000, alerted=True)})
    effects = rig.step(T0)
    assert kinds(effects) == []  # told already: not repeated
    assert protections(effects) == [PublishProtection(KEY, "none", T0 - 60_000, "")]
    assert rig.guard.unprotected() == ((KEY, T0 - 60_000),)
    # told but not alerted (the old leader died inside the grace): alerted at once, its start kept
    late = Rig(stop=False)
    late.guard.take_over({KEY: Told(T0 - 2500, alerted=False)})
    assert kinds(late.step(T0)) == []  # 2.5 s of the 3 s grace
    effects = late.step(T0 + 500)
    assert kinds(effects) == ["position_unprotected"]


def test_a_told_alert_ends_with_position_protected_when_the_new_leader_finds_it_covered_or_closed() -> None:
    rig = Rig()  # covered again: the old leader died before telling position_protected
    rig.guard.take_over({KEY: Told(None, alerted=True)})
    effects = rig.step(T0)  # rule 1c: covered only once a read of this lead term shows it
    assert (kinds(effects), protections(effects)) == ([], [PublishProtection(KEY, "unknown", None, "")])
    rig.feed(snapshot(algos=(algo_row(1),), at_ms=T0 + 10, symbols=frozenset({BAS}), request_id=2))
    effects = rig.step(T0 + 50)
    assert kinds(effects) == ["position_protected"]
    assert rig.guard.unprotected() == ()
    closed = Rig()
    closed.positions.by_key[KEY] = view(KEY, amount=ZERO)
    closed.guard.take_over({KEY: Told(T0 - 9000, alerted=True)})
    assert kinds(closed.step(T0)) == ["position_protected"]
    assert kinds(closed.step(T0 + 100)) == []
    quiet = Rig()  # nothing told: nothing to end
    quiet.guard.take_over({KEY: Told(T0 - 9000, alerted=False)})
    assert kinds(quiet.step(T0)) == []


def test_an_inherited_start_does_not_bring_the_last_resort_stop_forward() -> None:
    rig = Rig(GUARDED, stop=False)
    rig.guard.take_over({KEY: Told(T0 - 60_000, alerted=True)})
    assert places(rig.step(T0)) == []
    assert places(rig.step(T0 + GUARDED.emergency_after_ms - 1)) == []
    assert len(places(rig.step(T0 + GUARDED.emergency_after_ms))) == 1


def test_a_run_in_progress_takes_the_told_start_and_keeps_its_own_for_the_last_resort_stop() -> None:
    rig = Rig(GUARDED)
    rig.guard.step(rig.positions, rig.orders, no_leases(T0), T0, (), acting=False)
    rig.cancel_stop(T0 + 10)
    rig.guard.step(rig.positions, rig.orders, no_leases(T0 + 20), T0 + 20, (), acting=False)
    rig.guard.take_over({KEY: Told(T0 - 5000, alerted=False)})
    effects = rig.step(T0 + 1500)
    assert protections(effects) == [PublishProtection(KEY, "none", T0 - 5000, "")]
    assert kinds(effects) == ["position_unprotected"]  # past the grace from the told start
    assert places(rig.step(T0 + 20 + GUARDED.emergency_after_ms - 1)) == []
    assert len(places(rig.step(T0 + 20 + GUARDED.emergency_after_ms))) == 1


# ---------------------------------------------------------------- rule 8: doubt costs a read


def requests(effects: list[Effect]) -> list[RequestSnapshot]:
    return [e for e in effects if isinstance(e, RequestSnapshot)]


def test_an_open_positions_orders_unread_for_doubt_ms_are_asked_for_once_per_period() -> None:
    rig = Rig(GuardPolicy(doubt_ms=15_000))
    assert requests(rig.step(T0)) == []  # read just now (stamped at this step)
    assert requests(rig.step(T0 + 14_999)) == []
    asked = requests(rig.step(T0 + 15_000))
    assert asked == [RequestSnapshot(reason="guard: orders of BASUSDT last read 15000 ms ago",
                                     symbols=frozenset({BAS}))]
    assert requests(rig.step(T0 + 20_000)) == []  # asked already: not again within the period
    assert len(requests(rig.step(T0 + 30_000))) == 1  # unanswered: asked again
    rig.feed(snapshot(at_ms=T0 + 30_100, symbols=frozenset({BAS})))  # answered
    assert requests(rig.step(T0 + 30_200)) == []
    assert requests(rig.step(T0 + 45_199)) == []
    assert len(requests(rig.step(T0 + 45_200))) == 1


def test_doubt_reads_stay_within_their_allowance_with_many_positions_longest_unread_first() -> None:
    """300 open positions whose orders were never read (the footprint bench at defaults): a
    read per symbol every 15 s is ~8,000 weight/min and starved the positions poll until every
    position aged to unknown. At most ``doubt_reads_per_min`` in any 60 s, all symbols
    together; the longest unread (never read first, then never asked) go first."""
    policy = GuardPolicy(doubt_ms=15_000)
    rig = Rig(policy)
    for i in range(300):
        key = PositionKey(Symbol(f"S{i:03d}USDT"), KEY.side)
        rig.positions.by_key[key] = view(key, amount=AMT)
    asked: list[Symbol] = []
    for now_ms in range(T0, T0 + 180_001, 250):  # every tick for three minutes
        for request in requests(rig.step(now_ms)):
            assert request.symbols is not None
            asked += sorted(request.symbols)
    assert len(asked) == 3 * policy.doubt_reads_per_min + policy.doubt_reads_per_min
    assert len(set(asked)) == len(asked), "a symbol asked twice while others never were"
    assert BAS not in asked  # read at the start: not the longest unread


def test_no_doubt_read_for_a_standby_an_unconfirmed_or_closed_position_or_when_off() -> None:
    rig = Rig(GuardPolicy(doubt_ms=15_000))
    rig.step(T0)
    standby = rig.guard.step(rig.positions, rig.orders, no_leases(T0 + 20_000), T0 + 20_000, (),
                             acting=False)
    assert requests(standby) == []
    rig.positions.by_key[KEY] = view(KEY, amount=AMT, knowledge=Knowledge.SUSPECT)
    assert requests(rig.step(T0 + 20_000)) == []
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    assert requests(rig.step(T0 + 20_000)) == []
    off = Rig()
    off.step(T0)
    assert requests(off.step(T0 + 600_000)) == []


# ------------------------------------------------------------ rule 4b: ours, on a closed position


def cancels(effects: list[Effect]) -> list[CancelGuardStop]:
    return [e for e in effects if isinstance(e, CancelGuardStop)]


def placing(rig: Rig) -> str:
    """The run from no stop to a placement in flight (T0 .. T0 + 4000)."""
    rig.step(T0)
    (placed,) = places(rig.step(T0 + 4000))
    return placed.client_id


def test_a_stop_placed_just_after_the_close_is_removed_as_soon_as_its_answer_comes() -> None:
    """The chaos scenario guard_close_while_placing: the re-read saw the position open, the
    fill closed it, then the placement was answered. Before: left to the reaper (seconds)."""
    rig = Rig(GUARDED, stop=False)
    cid = placing(rig)
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)  # closed while placing
    assert cancels(rig.step(T0 + 4010)) == []  # no id yet: its answer comes
    effects = rig.step(T0 + 4020, outcomes=(GuardOutcome(KEY, "placed", cid, OrderId(77)),))
    assert cancels(effects) == [CancelGuardStop(KEY, OrderId(77), True, cid,
                                                "the position closed", if_flat=True)]
    assert cancels(rig.step(T0 + 4030)) == []  # removing: never twice
    rig.positions.by_key[KEY] = view(KEY, amount=AMT)  # reopened meanwhile: the shell's re-read
    assert places(rig.step(T0 + 9000)) == []  # ... may keep ours: never a second one meanwhile
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    rig.step(T0 + 9100, outcomes=(GuardOutcome(KEY, "removed", cid, OrderId(77)),))
    rig.positions.by_key[KEY] = view(KEY, amount=AMT)  # a new position: a new run, a new stop
    rig.step(T0 + 10_000)
    assert len(places(rig.step(T0 + 14_000))) == 1


def test_ours_seen_in_the_book_of_a_closed_position_is_removed_not_while_leased_nor_triggering(
        ) -> None:
    rig = Rig(GUARDED, stop=False)
    cid = placing(rig)
    rig.feed(algo_update(77, AlgoStatus.NEW, at_ms=T0 + 4005, client_id=cid, close_position=True))
    rig.step(T0 + 4010, outcomes=(GuardOutcome(KEY, "placed", cid, None),))  # id unknown
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    leased = Leases({KEY: T0 + 6000}, T0 + 5000)
    assert cancels(rig.step(T0 + 5000, leased)) == []
    assert cancels(rig.guard.step(rig.positions, rig.orders, None, T0 + 6100)) == []  # unknown
    assert cancels(rig.step(T0 + 6200, Leases({}, T0 + 5000))) == []  # read 1.2 s ago
    assert cancels(rig.step(T0 + 6300)) == [
        CancelGuardStop(KEY, OrderId(77), True, cid, "the position closed", if_flat=True)]
    # Triggering: ours is what closes the position; it ends by itself.
    rig = Rig(GUARDED, stop=False)
    cid = placing(rig)
    rig.step(T0 + 4010, outcomes=(GuardOutcome(KEY, "placed", cid, OrderId(77)),))
    rig.feed(algo_update(77, AlgoStatus.TRIGGERING, at_ms=T0 + 4020, client_id=cid,
                         close_position=True))
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    assert cancels(rig.step(T0 + 4030)) == []
    assert cancels(rig.step(T0 + 9000)) == []


def test_a_standby_or_an_open_position_never_has_ours_removed_for_a_close() -> None:
    rig = Rig(GUARDED, stop=False)
    cid = placing(rig)
    effects = rig.guard.step(rig.positions, rig.orders, no_leases(T0 + 4010), T0 + 4010,
                             (GuardOutcome(KEY, "placed", cid, OrderId(77)),))
    assert cancels(effects) == []  # open: ours protects it
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    assert cancels(rig.guard.step(rig.positions, rig.orders, no_leases(T0 + 4020), T0 + 4020,
                                  acting=False)) == []
    rig.positions.by_key[KEY] = view(KEY, amount=AMT, knowledge=Knowledge.SUSPECT)
    assert cancels(rig.step(T0 + 4030)) == []  # not known closed
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    assert len(cancels(rig.step(T0 + 4040))) == 1


def test_the_removal_after_a_close_respects_the_order_budget() -> None:
    rig = Rig(GuardPolicy(alert_ms=1000, emergency_stop_pct=Decimal(5), emergency_after_ms=4000,
                          max_orders_per_min=1), stop=False)
    cid = placing(rig)  # the one action of this minute
    rig.positions.by_key[KEY] = view(KEY, amount=ZERO)
    assert cancels(rig.step(T0 + 4010, outcomes=(GuardOutcome(KEY, "placed", cid,
                                                              OrderId(77)),))) == []
    assert cancels(rig.step(T0 + 63_999)) == []
    assert len(cancels(rig.step(T0 + 64_000))) == 1


# ---------------------------------------------------------------- rule 1c: a lead term's reads


DOUBTING = GuardPolicy(doubt_ms=15_000)


def led_then_stood_by(policy: GuardPolicy = DOUBTING) -> Rig:
    """Led (its stop read by REST), then a standby whose stream stays live but says nothing
    (muted: the cancel below never reaches it), as instance A in the HA report."""
    rig = Rig(policy)
    assert protections(rig.step(T0)) == [PublishProtection(KEY, "covered", None, "")]
    held: list[PublishProtection] = []
    for t in range(500, 20_000, 500):
        held += protections(rig.guard.step(rig.positions, rig.orders, no_leases(T0 + t), T0 + t,
                                           (), acting=False))
    # What it holds for a takeover's republish: never covered from the stream's silence.
    assert held == [PublishProtection(KEY, "unknown", None, "")]
    return rig


def test_an_instance_that_led_before_does_not_show_covered_from_its_old_reads_at_a_takeover() -> None:
    """The stop was cancelled while this instance stood by with a muted stream; the other
    leader found it gone by REST and alerted (Redis shows its start and its alert). Taking
    the lead back, this instance must neither publish covered nor tell position_protected
    from a book no read of its lead term shows (on main it did both at its first step)."""
    rig = led_then_stood_by()
    told = Told(T0 + 9000, alerted=True)
    rig.guard.take_over({KEY: told})
    effects = rig.step(T0 + 20_000)
    assert kinds(effects) == []
    assert protections(effects) == []  # unknown already, as held
    assert [r.symbols for r in requests(effects)] == [frozenset({BAS})]  # asked at once
    assert "not since taking the lead" in requests(effects)[0].reason
    assert kinds(rig.step(T0 + 21_000)) == []
    # The read of this lead term shows the stop gone: the told run goes on, not alerted twice.
    rig.feed(snapshot(at_ms=T0 + 21_100, symbols=frozenset({BAS}), request_id=2))
    effects = rig.step(T0 + 21_200)
    assert protections(effects) == [PublishProtection(KEY, "none", T0 + 9000, "")]
    assert kinds(effects) == []
    assert rig.guard.unprotected() == ((KEY, T0 + 9000),)


def test_a_lead_lost_and_taken_back_between_two_steps_needs_a_read_too() -> None:
    """No standby step between the two lead terms (the core did not step meanwhile): the
    takeover itself starts the term."""
    rig = Rig(DOUBTING)
    rig.step(T0)
    rig.guard.take_over({KEY: Told(T0 + 5000, alerted=True)})
    effects = rig.step(T0 + 9000)
    assert (kinds(effects), protections(effects)) == (
        [], [PublishProtection(KEY, "unknown", None, "")])


def test_a_read_applied_before_the_takeover_does_not_count_one_after_it_does() -> None:
    rig = led_then_stood_by()
    # The standby's own post-connect read, answered before it took the lead.
    rig.feed(snapshot(algos=(algo_row(1),), at_ms=T0 + 19_000, symbols=frozenset({BAS}),
                      request_id=2))
    rig.guard.step(rig.positions, rig.orders, no_leases(T0 + 19_500), T0 + 19_500, (),
                   acting=False)
    rig.guard.take_over({})
    assert protections(rig.step(T0 + 20_000)) == []  # still unknown
    # The takeover's algo sweep alone verifies an algo stop (the regular list may come later).
    rig.feed(OrdersSnapshot(3, T0 + 20_100, (), (algo_row(1),), None, covers_orders=False))
    assert protections(rig.step(T0 + 20_200)) == [PublishProtection(KEY, "covered", None, "")]


def test_after_a_takeover_no_last_resort_stop_before_a_read_and_none_beside_the_old_leaders() -> None:
    """Rule 1c never adds a stop: unknown places nothing; a stop of ours the old leader
    placed, shown by the term's read, covers the position (one per side)."""
    policy = GuardPolicy(alert_ms=1000, emergency_stop_pct=Decimal(5), emergency_after_ms=4000,
                         doubt_ms=15_000)
    rig = led_then_stood_by(policy)
    rig.guard.take_over({KEY: Told(T0 + 9000, alerted=True)})
    for t in range(20_000, 40_000, 500):
        assert places(rig.step(T0 + t)) == []
    theirs = algo_row(9, client_id=f"{GUARD_CLIENT_ID_PREFIX}{T0 + 15_000}-1", close_position=True)
    rig.feed(snapshot(algos=(theirs,), at_ms=T0 + 40_000, symbols=frozenset({BAS}), request_id=2))
    for t in range(40_100, 60_000, 500):
        assert places(rig.step(T0 + t)) == []
