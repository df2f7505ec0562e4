"""Fusion rules of PositionBook, one behaviour per test (rules numbered as in book.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.core.facts import (
    BTC,
    ETH,
    algo_update,
    amount,
    failed,
    key,
    order_update,
    requested,
    snapshot,
    stream,
    trade_lite,
)
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.core.effects import (
    Effect,
    Notify,
    Publish,
    RaiseAlert,
    ReadNow,
    Reconnect,
    RequestSnapshot,
    Reverified,
)
from watchdog.core.events import (
    AccountConfigUpdate,
    AlgoUpdate,
    CanaryAlert,
    ListenKeyExpired,
    MalformedFrame,
    MarginCall,
    OrdersSnapshot,
    StreamConnected,
    StreamLost,
    StreamPositions,
    Tick,
)
from watchdog.core.model import Knowledge, PositionSide, PositionState, Source, Symbol

LONG = key("BTCUSDT", PositionSide.LONG)
SHORT = key("BTCUSDT", PositionSide.SHORT)


def publishes(effects: list[Effect]) -> list[Publish]:
    """Every Publish, a ``Reverified`` as the refreshes it stands for (effects rule 3)."""
    return [p for e in effects for p in (e.publishes() if isinstance(e, Reverified) else [e])
            if isinstance(p, Publish)]


def expanded(effects: list[Effect]) -> list[Effect]:
    """``effects`` with every ``Reverified`` replaced by its refreshes, in place."""
    return [p for e in effects for p in (e.publishes() if isinstance(e, Reverified) else [e])]


def kinds(effects: list[Effect]) -> list[str]:
    return [e.kind for e in effects if isinstance(e, Notify)]


def alerts(effects: list[Effect]) -> list[str]:
    return [e.code for e in effects if isinstance(e, RaiseAlert)]


def requests(effects: list[Effect]) -> list[RequestSnapshot]:
    return [e for e in effects if isinstance(e, RequestSnapshot)]


def state(book: PositionBook, k: object = BTC) -> PositionState:
    view = book.view(k)  # type: ignore[arg-type]
    assert view is not None
    return view.state


class Harness:
    """A book plus a request-id counter: ``poll`` brackets a snapshot as the shell does."""

    def __init__(self, policy: BookPolicy | None = None) -> None:
        self.book = PositionBook(policy)
        self.next_id = 1

    def apply(self, event: object, now_ms: int) -> list[Effect]:
        return self.book.apply(event, now_ms)  # type: ignore[arg-type]

    def poll(self, now_ms: int, *rows: object, symbols: tuple[str, ...] = ()) -> list[Effect]:
        rid, self.next_id = self.next_id, self.next_id + 1
        self.apply(requested(rid, now_ms, *symbols), now_ms)
        return self.apply(snapshot(rid, now_ms, *rows, symbols=symbols), now_ms)  # type: ignore[arg-type]


@pytest.fixture
def h() -> Harness:
    """A live book: connected, reconciled by an empty all-symbols snapshot at t=0."""
    harness = Harness()
    harness.apply(StreamConnected(1), 0)
    harness.poll(0)
    assert harness.book.stream_state == "live"
    return harness


# ---------------------------------------------------------------- rule 1: ordering


def test_startup_snapshot_confirms_without_notify() -> None:
    h = Harness()
    effects = h.poll(1000, amount(BTC, 1, 900))
    view = h.book.view(BTC)
    assert view is not None
    assert (view.state, view.knowledge, view.amount) == (PositionState.OPEN, Knowledge.CONFIRMED,
                                                         Decimal(1))
    assert (view.version, view.verified_ms, view.as_of_time_ms, view.source) == (1, 1000, 900,
                                                                                Source.REST)
    assert publishes(effects) == [Publish(view)]
    assert kinds(effects) == []  # no open↔closed transition seen yet
    assert str(h.book.stream_state) == "down"


def test_stream_open_on_live_stream_confirms_and_notifies(h: Harness) -> None:
    effects = h.apply(stream(BTC, "0.5", 100), 100)
    view = h.book.view(BTC)
    assert view is not None
    assert view.state is PositionState.OPEN
    assert view.verified_ms == 100
    assert view.source is Source.STREAM
    assert kinds(effects) == ["position_opened"]


def test_same_fact_twice_changes_nothing(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    assert h.apply(stream(BTC, 1, 100), 150) == [ReadNow(BTC.symbol)]  # nothing published


def test_older_stream_fact_is_ignored(h: Harness) -> None:
    h.apply(stream(BTC, 2, 200), 200)
    assert h.apply(stream(BTC, 1, 100), 210) == [ReadNow(BTC.symbol)]  # nothing published
    view = h.book.view(BTC)
    assert view is not None
    assert view.amount == 2


def test_equal_time_stream_fact_with_other_amount_wins(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(stream(BTC, 3, 100), 101)
    view = h.book.view(BTC)
    assert view is not None
    assert view.amount == 3


def test_no_op_tick_publishes_nothing(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    assert h.apply(Tick(), 200) == []


def test_hedge_sides_are_separate_keys(h: Harness) -> None:
    h.apply(stream(LONG, 2, 100), 100)
    h.apply(stream(SHORT, -1, 100), 100)
    assert [v.key for v in h.book.views()] == [LONG, SHORT]
    assert [v.amount for v in h.book.views()] == [2, -1]


# ---------------------------------------------------------------- rule 2: REST vs stream


def test_late_timed_rest_row_never_overwrites_newer_stream_fact(h: Harness) -> None:
    h.apply(stream(BTC, 2, 5000), 5000)
    effects = h.poll(5100, amount(BTC, 1, 4000))
    view = h.book.view(BTC)
    assert view is not None
    assert view.amount == 2
    assert view.state is PositionState.OPEN
    assert publishes(effects) == []
    assert requests(effects) == []


def test_newer_rest_row_overrides_stream_fact(h: Harness) -> None:
    h.apply(stream(BTC, 2, 1000), 1000)
    h.apply(trade_lite("BTCUSDT", 1500), 1500)  # the stream did report a fill: not blind
    effects = h.poll(1600, amount(BTC, 3, 1500))
    view = h.book.view(BTC)
    assert view is not None
    assert (view.amount, view.as_of_time_ms, view.source) == (Decimal(3), 1500, Source.REST)
    assert alerts(effects) == []


def test_rest_flat_within_lag_makes_suspect_and_requests(h: Harness) -> None:
    h.apply(stream(BTC, 1, 5000), 5000)
    effects = h.poll(6000)  # 6000 - 2000 < 5000: REST may not show the open yet
    view = h.book.view(BTC)
    assert view is not None
    assert view.state is PositionState.UNKNOWN
    assert view.knowledge is Knowledge.SUSPECT
    assert "lag" in view.reason
    assert view.amount == 1  # kept for diagnosis
    assert requests(effects) == [RequestSnapshot(reason="REST ambiguous on BTCUSDT:BOTH",
                                                 symbols=frozenset({Symbol("BTCUSDT")}))]
    assert h.book.flat_since(BTC) is None


def test_rest_flat_beyond_lag_closes(h: Harness) -> None:
    h.apply(stream(BTC, 1, 5000), 5000)
    h.apply(order_update("BTCUSDT", 6000, last_filled="1"), 6000)
    effects = h.poll(7100)
    view = h.book.view(BTC)
    assert view is not None
    assert view.state is PositionState.CLOSED
    assert view.as_of_time_ms == 7100 - 2000
    assert kinds(effects) == ["position_closed"]
    assert alerts(effects) == []


def test_zero_time_flat_row_is_treated_like_absence(h: Harness) -> None:
    h.apply(stream(BTC, 1, 5000), 5000)
    h.poll(6000, amount(BTC, 0, 0))
    assert h.book.view(BTC).knowledge is Knowledge.SUSPECT  # type: ignore[union-attr]


def test_rest_confirming_same_amount_refreshes_verified(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    effects = h.poll(300, amount(BTC, 1, 100))
    view = h.book.view(BTC)
    assert view is not None
    assert view.verified_ms == 300
    assert view.source is Source.STREAM
    assert [p.view.version for p in publishes(effects)] == [2]
    h.poll(400, amount(BTC, 1, 350))
    assert h.book.view(BTC).source is Source.REST  # type: ignore[union-attr]


def test_flat_row_of_unseen_key_creates_nothing(h: Harness) -> None:
    assert h.poll(100, amount(ETH, 0, 0)) == []
    assert h.book.view(ETH) is None


# ---------------------------------------------------------------- rule 3: gaps


@pytest.mark.parametrize("gap", [StreamLost(1, "1006"), StreamConnected(2), ListenKeyExpired(5)])
def test_gap_makes_every_key_suspect_and_requests(h: Harness, gap: object) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    effects = h.apply(gap, 200)
    assert state(h.book) is PositionState.UNKNOWN
    assert h.book.view(BTC).knowledge is Knowledge.SUSPECT  # type: ignore[union-attr]
    assert kinds(effects) == ["stream_lost"]
    if isinstance(gap, StreamConnected):  # the stream reads a snapshot after every connect
        assert requests(effects) == []
        return
    assert len(requests(effects)) == 1
    assert requests(effects)[0].symbols is None


def test_gap_lifecycle_and_stream_state() -> None:
    h = Harness()
    assert str(h.book.stream_state) == "down"
    assert kinds(h.apply(StreamConnected(1), 0)) == []  # never connected before: nothing lost
    assert str(h.book.stream_state) == "gap"
    assert kinds(h.poll(10)) == ["stream_recovered"]
    assert str(h.book.stream_state) == "live"
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(requested(50, 150), 150)  # requested before the gap
    h.apply(StreamLost(1, "1006"), 200)
    assert str(h.book.stream_state) == "down"
    assert kinds(h.apply(StreamLost(1, "again"), 201)) == []  # already down
    h.apply(StreamConnected(2), 300)
    assert str(h.book.stream_state) == "gap"
    h.apply(stream(BTC, 2, 310), 310)  # applied, but does not confirm
    view = h.book.view(BTC)
    assert view is not None
    assert view.amount == 2
    assert view.state is PositionState.UNKNOWN
    h.apply(snapshot(50, 150, amount(BTC, 2, 310)), 320)  # pre-gap request: not trusted
    assert state(h.book) is PositionState.UNKNOWN
    assert str(h.book.stream_state) == "gap"
    h.poll(400, amount(BTC, 2, 310))
    assert state(h.book) is PositionState.OPEN
    assert str(h.book.stream_state) == "live"


def test_pre_gap_snapshot_with_newer_row_applies_but_does_not_confirm(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(requested(77, 150), 150)
    h.apply(StreamLost(1, "1006"), 200)
    h.apply(snapshot(77, 150, amount(BTC, 3, 140)), 250)
    view = h.book.view(BTC)
    assert view is not None
    assert view.amount == 3
    assert view.knowledge is Knowledge.SUSPECT


def test_pre_gap_snapshot_new_key_is_unknown(h: Harness) -> None:
    h.apply(requested(77, 150), 150)
    h.apply(StreamLost(1, "1006"), 200)
    h.apply(snapshot(77, 150, amount(ETH, 3, 140)), 250)
    view = h.book.view(ETH)
    assert view is not None
    assert view.knowledge is Knowledge.UNKNOWN
    assert view.state is PositionState.UNKNOWN


def test_pre_gap_snapshot_flat_within_lag_changes_nothing(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(requested(77, 150), 150)
    h.apply(StreamLost(1, "1006"), 200)
    assert h.apply(snapshot(77, 150), 250) == []
    assert h.book.view(BTC).amount == 1  # type: ignore[union-attr]


def test_repeated_doubt_with_same_reason_publishes_nothing(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    assert publishes(h.apply(failed(1), 200)) != []
    assert h.apply(failed(2), 300) == []


def test_unrequested_snapshot_is_not_trusted(h: Harness) -> None:
    h.apply(snapshot(999, 100, amount(BTC, 1, 90)), 100)
    assert h.book.view(BTC).knowledge is Knowledge.UNKNOWN  # type: ignore[union-attr]


def test_confirmed_key_changed_by_untrusted_snapshot_becomes_suspect(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(snapshot(999, 5000, amount(BTC, 4, 4000)), 5000)
    assert h.book.view(BTC).knowledge is Knowledge.SUSPECT  # type: ignore[union-attr]


def test_new_key_during_gap_stays_unknown_until_post_gap_snapshot(h: Harness) -> None:
    h.apply(StreamLost(1, "1006"), 100)
    h.apply(StreamConnected(2), 110)
    h.apply(stream(ETH, 1, 120), 120)
    assert h.book.view(ETH).knowledge is Knowledge.UNKNOWN  # type: ignore[union-attr]
    effects = h.poll(130, amount(ETH, 1, 120))
    assert state(h.book, ETH) is PositionState.OPEN
    assert kinds(effects) == ["stream_recovered"]  # no prior confirmed state: no opened notice


# ---------------------------------------------------------------- rule 4: failed/partial reads


def test_failed_read_is_suspect_never_closed(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(requested(9, 150), 150)
    h.apply(failed(9), 200)
    view = h.book.view(BTC)
    assert view is not None
    assert view.state is PositionState.UNKNOWN
    assert view.amount == 1
    assert view.reason == "snapshot failed: HTTP 503"
    assert h.book.snapshots_failed == 1


def test_failed_scoped_read_only_touches_its_symbols(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(stream(ETH, 1, 100), 100)
    h.apply(requested(9, 150, "ETHUSDT"), 150)
    h.apply(failed(9), 200)
    assert state(h.book, BTC) is PositionState.OPEN
    assert state(h.book, ETH) is PositionState.UNKNOWN


def test_failed_unknown_request_touches_everything(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(failed(12345), 200)
    assert state(h.book) is PositionState.UNKNOWN


def test_stream_fact_does_not_clear_a_failed_read(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(failed(12345), 200)
    h.apply(stream(BTC, 2, 300), 300)
    assert state(h.book) is PositionState.UNKNOWN
    h.poll(400, amount(BTC, 2, 300))
    assert state(h.book) is PositionState.OPEN


def test_scoped_snapshot_only_confirms_its_symbols(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(stream(ETH, 1, 100), 100)
    h.apply(StreamConnected(2), 200)
    h.poll(300, amount(BTC, 1, 100), symbols=("BTCUSDT",))
    assert state(h.book, BTC) is PositionState.OPEN
    assert state(h.book, ETH) is PositionState.UNKNOWN
    assert str(h.book.stream_state) == "gap"
    h.apply(stream(BTC, 2, 310), 310)  # BTC is reconciled: its stream facts confirm again
    assert state(h.book, BTC) is PositionState.OPEN
    h.apply(stream(ETH, 2, 310), 310)
    assert state(h.book, ETH) is PositionState.UNKNOWN


# ---------------------------------------------------------------- rule 5: age


def test_knowledge_expires_then_returns_with_authoritative_fact(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    assert h.apply(Tick(), 5100) == []  # exactly max_age: still fresh
    effects = h.apply(Tick(), 5101)
    view = h.book.view(BTC)
    assert view is not None
    assert view.state is PositionState.UNKNOWN
    assert view.knowledge is Knowledge.EXPIRED
    assert view.amount == 1
    assert "expired" in view.reason
    assert publishes(effects) == [Publish(view)]
    h.apply(stream(BTC, 2, 5200), 5200)  # a stream fact does not revive expired knowledge
    assert state(h.book) is PositionState.UNKNOWN
    assert "expired" in h.book.view(BTC).reason  # type: ignore[union-attr]
    h.poll(5300, amount(BTC, 2, 5200))
    assert state(h.book) is PositionState.OPEN


def test_each_key_expires_on_its_own_clock(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(stream(ETH, 1, 3000), 3000)
    h.apply(snapshot(999, 3000, amount(LONG, 1, 2900)), 3000)  # unrequested: stays unknown
    h.apply(Tick(), 5101)
    assert h.book.view(BTC).knowledge is Knowledge.EXPIRED  # type: ignore[union-attr]
    assert h.book.view(ETH).knowledge is Knowledge.CONFIRMED  # type: ignore[union-attr]
    assert h.book.view(LONG).knowledge is Knowledge.UNKNOWN  # type: ignore[union-attr]
    assert h.apply(Tick(), 8000) == []
    h.apply(Tick(), 8001)
    assert h.book.view(ETH).knowledge is Knowledge.EXPIRED  # type: ignore[union-attr]


def test_suspect_knowledge_expires(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(failed(1), 200)
    h.apply(Tick(), 5101)
    assert h.book.view(BTC).knowledge is Knowledge.EXPIRED  # type: ignore[union-attr]


# ---------------------------------------------------------------- rule 6: publishing


def test_versions_increase_and_notices_follow_confirmed_state(h: Harness) -> None:
    versions = [p.view.version for p in publishes(h.apply(stream(BTC, 1, 100), 100))]
    versions += [p.view.version for p in publishes(h.apply(StreamLost(1, "x"), 110))]
    versions += [p.view.version for p in publishes(h.apply(StreamConnected(2), 120))]  # reason
    effects = h.poll(2200)  # beyond max_rest_lag_ms of the open: REST flat is authoritative
    versions += [p.view.version for p in publishes(effects)]
    assert versions == [1, 2, 3, 4]
    assert "position_closed" in kinds(effects)  # open → (unknown) → closed still notifies
    effects = h.apply(stream(BTC, -1, 2300), 2300)
    assert kinds(effects) == ["position_opened"]


# ---------------------------------------------------------------- rule 7: stream blindness


def test_incident_basusdt_stream_mute_rest_flat(h: Harness) -> None:
    """Stream reports the open, then goes mute; the stop fills unseen; REST shows flat."""
    bas = key("BASUSDT")
    h.apply(stream(bas, 1216, 1000), 1000)
    assert state(h.book, bas) is PositionState.OPEN
    for now in (2000, 3000, 4000):
        h.poll(now, amount(bas, 1216, 1000))  # REST agrees; the stream stays silent
    effects = h.poll(5000)  # stop filled around 4500; no ACCOUNT_UPDATE, no fill notice
    view = h.book.view(bas)
    assert view is not None
    assert view.state is PositionState.CLOSED  # the state changes at once
    assert view.knowledge is Knowledge.CONFIRMED
    assert view.source is Source.REST
    assert kinds(effects) == ["position_closed"]  # flat without time: maybe closed just now
    assert alerts(h.poll(5900)) == []  # within blind_after_ms: the stream may just be late
    effects = h.poll(6800)  # the next 0.9 s poll past the tolerance: still unreported
    assert alerts(effects) == ["stream_blind"]
    assert kinds(effects) == ["stream_blind"]
    assert h.book.flat_since(bas) == 5000


def test_rest_open_never_streamed_is_blindness(h: Harness) -> None:
    effects = h.poll(2000, amount(ETH, 2, 900))  # opened 1100 ms before the read
    assert alerts(effects) == ["stream_blind"]
    assert kinds(effects) == ["position_opened", "stream_blind"]


def test_rest_open_after_streamed_fill_is_not_blindness(h: Harness) -> None:
    h.apply(trade_lite("ETHUSDT", 900), 900)
    effects = h.poll(1000, amount(ETH, 2, 900))
    assert alerts(effects) == []
    assert kinds(effects) == ["position_opened"]


def test_no_blindness_across_a_gap(h: Harness) -> None:
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(StreamConnected(2), 200)
    effects = h.poll(5000)
    assert alerts(effects) == []
    assert state(h.book) is PositionState.CLOSED


# ---------------------------------------------------------------- other events


def test_fills_request_a_scoped_snapshot(h: Harness) -> None:
    btc = frozenset({Symbol("BTCUSDT")})
    assert h.apply(trade_lite("BTCUSDT", 100), 100) == [
        ReadNow(BTC.symbol), RequestSnapshot(reason="fill on BTCUSDT", symbols=btc)]
    assert requests(h.apply(order_update("BTCUSDT", 110, last_filled="0.5"), 110))[0].symbols == btc
    assert h.apply(order_update("BTCUSDT", 120), 120) == [ReadNow(BTC.symbol)]  # no fill: no read


def test_every_stream_event_on_a_symbol_says_read_it_now(h: Harness) -> None:
    """The poller reads the symbol's orders once more and watches it (binance/schedule.py)."""
    short = key("BTCUSDT", PositionSide.SHORT)
    both = StreamPositions(101, 100, "ORDER", (amount(LONG, 1, 100), amount(short, 0, 100),
                                               amount(ETH, 1, 100)))
    assert [e for e in h.apply(both, 100) if isinstance(e, ReadNow)] == [
        ReadNow(BTC.symbol), ReadNow(ETH.symbol)]  # once per symbol
    assert h.apply(algo_update("BTCUSDT", 110), 110) == [ReadNow(BTC.symbol)]
    assert h.apply(MarginCall(120, ()), 120) == []
    assert h.apply(AccountConfigUpdate(131, 130, Symbol("BTCUSDT"), 20, None), 130) == []


@pytest.mark.parametrize("event", [
    algo_update("BTCUSDT", 100),
    AccountConfigUpdate(101, 100, Symbol("BTCUSDT"), 20, None),
    OrdersSnapshot(1, 100, (), ()),
])
def test_order_facts_do_not_change_positions(h: Harness, event: object) -> None:
    h.apply(stream(BTC, 1, 50), 50)
    reads = [ReadNow(BTC.symbol)] if isinstance(event, AlgoUpdate) else []
    assert h.apply(event, 100) == reads  # nothing published
    assert state(h.book) is PositionState.OPEN


def test_margin_call_alerts_without_state_change(h: Harness) -> None:
    h.apply(stream(BTC, 1, 50), 50)
    effects = h.apply(MarginCall(100, (amount(BTC, 1, 100),)), 100)
    assert alerts(effects) == ["margin_call"]
    assert requests(effects)[0].symbols == frozenset({Symbol("BTCUSDT")})
    assert publishes(effects) == []
    assert h.apply(MarginCall(101, ()), 101) == []


def test_health_counters(h: Harness) -> None:
    assert h.book.last_event_ms is None
    assert h.book.last_snapshot_ms == 0
    h.apply(stream(BTC, 1, 50), 60)
    assert h.book.last_event_ms == 60
    assert h.book.events_applied == 4  # connected, requested, snapshot, stream
    assert h.book.policy == BookPolicy()


def test_pending_requests_are_bounded() -> None:
    book = PositionBook()
    for rid in range(1100):
        book.apply(requested(rid, rid), rid)
    book.apply(snapshot(0, 0, amount(BTC, 1, 0)), 1100)  # forgotten: untrusted
    assert book.view(BTC).knowledge is Knowledge.UNKNOWN  # type: ignore[union-attr]
    book.apply(snapshot(1099, 1099, amount(BTC, 1, 0)), 1100)
    assert book.view(BTC).knowledge is Knowledge.CONFIRMED  # type: ignore[union-attr]


def test_amounts_are_decimals(h: Harness) -> None:
    h.apply(stream(BTC, "0.001", 50), 50)
    assert h.book.view(BTC).amount == Decimal("0.001")  # type: ignore[union-attr]


def test_out_of_order_rest_answer_is_ignored(h: Harness) -> None:
    """Truth: open 1 at t=100 (streamed), 2 at t=3500 and flat at t=4500 (both unseen)."""
    h.apply(stream(BTC, 1, 100), 100)
    h.apply(requested(50, 4000), 4000)  # older read, answered late: shows 2 since 3500
    h.poll(5100)  # newer read: flat; beyond lag of the open, so as_of = 5100 - 2000 = 3100
    assert state(h.book) is PositionState.CLOSED
    assert h.apply(snapshot(50, 4000, amount(BTC, 2, 3500)), 5200) == []
    assert state(h.book) is PositionState.CLOSED


def test_versions_start_above_the_base_so_they_grow_across_restarts() -> None:
    first, second = PositionBook(), PositionBook(version_base=5_000)
    for book in (first, second):
        book.apply(StreamConnected(1), 1_000)
        book.apply(requested(1, 1_000), 1_000)
        book.apply(snapshot(1, 1_000, amount(BTC, 2, 900)), 1_050)
    one, other = first.view(BTC), second.view(BTC)
    assert one is not None
    assert other is not None
    assert other.version == 5_000 + one.version


def test_expected_keys_from_an_earlier_run_are_published_from_rest_even_when_flat() -> None:
    book = PositionBook()
    book.expect([BTC, ETH])
    book.apply(StreamConnected(1), 1_000)
    book.apply(requested(1, 1_000, "BTCUSDT"), 1_000)
    effects = book.apply(snapshot(1, 1_000, symbols=("BTCUSDT",)), 1_050)
    published = [e.view for e in effects if isinstance(e, Publish)]
    assert [(v.key, v.state) for v in published] == [(BTC, PositionState.CLOSED)]
    assert book.view(ETH) is None  # not covered by that read: nothing said about it yet
    book.apply(requested(2, 2_000), 2_000)
    effects = book.apply(snapshot(2, 2_000, amount(ETH, 3, 1_900)), 2_050)
    eth = book.view(ETH)
    assert eth is not None
    assert eth.state is PositionState.OPEN
    book.expect([BTC])  # already held: the book's own knowledge wins, nothing changes
    assert book.apply(Tick(), 2_060) == []


SOL = key("SOLUSDT")


def test_a_change_while_no_watchdog_ran_is_told_with_while_down() -> None:
    """Issue 12, Deliver 6: Redis last showed BTC open (verified at 500) and ETH closed; the
    first read finds BTC flat and ETH open: both changes are notified, marked while_down."""
    book = PositionBook()
    book.expect([BTC, ETH, SOL], {BTC: (PositionState.OPEN, 500), ETH: (PositionState.CLOSED, 400),
                                  SOL: (PositionState.OPEN, 450)})
    book.apply(StreamConnected(1), 1_000)
    book.apply(requested(1, 1_000), 1_000)
    effects = book.apply(snapshot(1, 1_000, amount(ETH, 3, 900), amount(SOL, 2, 800)), 1_050)
    notes = [(e.kind, e.key, dict(e.detail)) for e in effects if isinstance(e, Notify) and e.key]
    assert notes == [
        ("position_closed", BTC, {"amount": "0", "while_down": "true", "last_seen_ms": "500"}),
        ("position_opened", ETH, {"amount": "3", "while_down": "true", "last_seen_ms": "400"}),
    ]  # SOL is still open: nothing changed, nothing said
    book.apply(requested(2, 9_000), 9_000)
    effects = book.apply(snapshot(2, 9_000, amount(SOL, 2, 800)), 9_050)
    # A later change is seen live: no while_down any more.
    assert [(e.kind, e.key, dict(e.detail)) for e in effects if isinstance(e, Notify)] == [
        ("position_closed", ETH, {"amount": "0"})]


def test_a_closure_first_seen_on_the_stream_after_a_restart_is_not_while_down() -> None:
    book = PositionBook()
    book.expect([BTC], {BTC: (PositionState.OPEN, 500)})
    book.apply(StreamConnected(1), 1_000)
    book.apply(requested(1, 1_000), 1_000)
    book.apply(stream(BTC, 0, 1_010), 1_010)  # ACCOUNT_UPDATE: it closed after we connected
    effects = book.apply(snapshot(1, 1_000), 1_050)
    assert [(e.kind, e.key, dict(e.detail)) for e in effects if isinstance(e, Notify) and e.key] == [
        ("position_closed", BTC, {"amount": "0"})]


def test_the_canarys_blind_verdict_leaves_as_rule_7s_and_a_failed_canary_as_an_alert() -> None:
    book = PositionBook()
    assert book.apply(CanaryAlert("stream_blind", "no ALGO_UPDATE in 5 s"), 1000) == [
        RaiseAlert("stream_blind", "no ALGO_UPDATE in 5 s"),
        Notify("stream_blind", None, (("message", "no ALGO_UPDATE in 5 s"),)),
        Reconnect("no ALGO_UPDATE in 5 s")]
    assert book.apply(CanaryAlert("canary_failed", "HTTP 503"), 1001) == [
        RaiseAlert("canary_failed", "HTTP 503")]


def test_a_malformed_frame_asks_rest_at_once() -> None:
    """It may have carried a position change (the stream could not read it): read all symbols
    now, not at the next poll; nothing the book knows changes."""
    book = PositionBook()
    assert book.apply(MalformedFrame("not JSON"), 1000) == [
        RequestSnapshot(reason="malformed user-stream frame: not JSON")]
    assert book.views() == []
