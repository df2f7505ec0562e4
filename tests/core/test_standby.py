"""Make-before-break at suspicion (book rule 9, core/flat_run.py rule 5, core/blindness.py rule
6): a standby connection opened when REST first shows an unreported change lets a blind
reconnect break the flat run as of the standby's mark instead of at the reconnect. Each test
tries to make the reaper cancel a stop that protects an open position through that shortcut.
Pure: real PositionBook/OrderBook, injected times (the World of test_reaper_rules: REST lag
bound 500 ms, grace 2 s, blind_after_ms 1 s)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.core.facts import amount, key, requested, snapshot, stream, trade_lite
from tests.core.reaper_support import KEY, algo_update
from tests.core.test_reaper_rules import World
from watchdog.core.effects import PrepareStandby, Reconnect
from watchdog.core.events import StandbyListening, StreamConnected, StreamLost
from watchdog.core.flat_run import FlatRun
from watchdog.core.model import AlgoStatus
from watchdog.core.reaper import Why

NEVER_HELD = key("ETHUSDT")


def suspected() -> World:
    """A stop placed at 1_300; the stream goes mute; the position closes at 5_000 and the first
    REST read after it (5_100) holds the change back and asks for a standby."""
    w = World()
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300), 1_300)
    w.h.poll(4_900, amount(KEY, 1216, 0))  # still open (REST polls all along)
    effects = w.h.poll(5_100)
    assert [e for e in effects if isinstance(e, PrepareStandby)], effects
    return w


def listening(w: World, at_ms: int, conn_id: int = 2) -> None:
    """The standby listens; the shell reads positions right after (the tests' next poll)."""
    w.h.apply(StandbyListening(conn_id), at_ms)


def promote(w: World, at_ms: int, conn_id: int = 2, *, standby: bool = True) -> None:
    w.apply(StreamLost(1, "blind"), at_ms)
    w.apply(StreamConnected(conn_id, standby=standby), at_ms)


def test_no_standby_when_the_verdict_comes_with_the_read_that_holds_the_change() -> None:
    """A change already past the tolerance is judged at once: a standby would come too late."""
    w = World()
    effects = w.h.poll(5_100)  # unreported since the last read at 0: blind at once
    assert [e for e in effects if isinstance(e, Reconnect)]
    assert not [e for e in effects if isinstance(e, PrepareStandby)]


def test_a_suspicion_asks_for_one_standby_per_episode() -> None:
    w = suspected()
    effects = w.h.poll(5_600)  # still held back: the same episode
    assert not [e for e in effects if isinstance(e, PrepareStandby)]
    assert [e for e in w.h.poll(6_100) if isinstance(e, Reconnect)]  # the verdict


def test_a_promoted_standby_keeps_the_run_from_the_first_read_after_its_mark() -> None:
    """The point of it: the run goes on from the read the standby asked for (5_160), not from
    the post-connect read (6_120): the stop goes ~1 s sooner."""
    w = suspected()
    listening(w, 5_150)
    w.h.poll(5_160)
    assert [e for e in w.h.poll(6_100) if isinstance(e, Reconnect)]
    promote(w, 6_110)
    # Rule 3 as ever: nothing is flat-proven between the gap and the post-gap read, not even a
    # key the book never held (the all-symbols run), not even with the run kept.
    assert w.h.book.flat_since(KEY) is None
    assert w.h.book.flat_since(NEVER_HELD) is None
    w.h.poll(6_120)  # the post-connect read
    assert w.h.book.flat_since(KEY) == 5_160
    assert w.h.book.flat_since(NEVER_HELD) == 5_160
    w.h.poll(7_660)
    assert w.why(7_660) is Why.ORPHAN  # 7_660 - 500 >= 5_160 + 2_000
    # Without the standby the same reads prove nothing until 6_120 + 2_500.


def test_without_a_promotion_the_gap_restarts_the_run_at_the_post_connect_read() -> None:
    w = suspected()
    w.h.poll(6_100)
    promote(w, 6_110, standby=False)
    w.h.poll(6_120)
    assert w.h.book.flat_since(KEY) == 6_120


# ------------------------------------------------------------------ (a) a fill after the mark


def test_a_fill_the_standby_delivers_after_the_gap_keeps_the_stop_account_update() -> None:
    """The bot's entry fills at 5_900, after the mark: the old stream is mute, the standby
    buffers it and the shell delivers it right after the gap; REST lags and still shows flat."""
    w = suspected()
    listening(w, 5_150)
    w.h.poll(5_160)
    w.h.poll(6_100)
    promote(w, 6_110)
    w.apply(stream(KEY, 1216, 5_900), 6_110)  # the standby's buffered ACCOUNT_UPDATE
    for at_ms in (6_120, 6_390):
        w.h.poll(at_ms)  # lawful flat rows: requested less than the lag bound after the fill
        assert w.why(at_ms) is not Why.ORPHAN, at_ms
    w.h.poll(7_660, amount(KEY, 1216, 5_900))  # REST catches up
    assert w.why(60_000) is Why.POSITION_OPEN


def test_a_fill_the_standby_delivers_after_the_gap_keeps_the_stop_trade_lite_only() -> None:
    """The incident's way: a fill with no ACCOUNT_UPDATE. The reaper's grace restarts at the
    fill (reaper rule 2), so the resumed run cannot prove it over before REST shows the open."""
    w = suspected()
    listening(w, 5_150)
    w.h.poll(5_160)
    w.h.poll(6_100)
    promote(w, 6_110)
    w.apply(trade_lite(str(KEY.symbol), 5_900, qty="1216"), 6_110)
    for at_ms in (6_120, 6_390):
        w.h.poll(at_ms)  # lawful flat rows: requested less than the lag bound after the fill
        assert w.why(at_ms) is not Why.ORPHAN, at_ms
    w.h.poll(7_660, amount(KEY, 1216, 5_900))  # REST catches up
    assert w.why(60_000) is Why.POSITION_OPEN


def test_an_open_after_the_mark_breaks_the_run_the_promotion_keeps() -> None:
    """The old stream still delivered an open after the mark (then the position closed again):
    the run the promotion keeps must start after that open (flat_run rule 5: the shadow follows
    every break), not at the read the standby asked for."""
    w = suspected()
    listening(w, 5_150)
    w.h.poll(5_160)
    w.apply(stream(KEY, 1216, 5_500), 5_500)  # an open after the mark
    w.apply(stream(KEY, 0, 5_800), 5_800)     # closed again
    w.h.poll(6_100)
    promote(w, 6_110)
    w.h.poll(6_120)
    since = w.h.book.flat_since(KEY)
    assert since is not None
    assert since > 5_800


# ------------------------------------------------- (b) a fill before the mark, hidden by REST lag


def test_a_fill_missed_before_the_mark_keeps_its_stop() -> None:
    """test_reaper_rules' blind-reconnect red team, with a standby: the run kept from before
    the mark (5_100) would let the post-connect read prove the grace over while the entry the
    mute stream missed at 7_400 is hidden by REST lag; broken as of the mark (7_450), the
    proving read comes grace + lag after 7_460 and shows the open."""
    w = suspected()
    w.h.poll(6_100)
    w.h.poll(7_100)
    # 7_400: the entry fills; the mute stream says nothing. 7_450: a standby listens.
    listening(w, 7_450)
    w.h.poll(7_460)  # lawful flat: 7_460 - 500 < 7_400
    promote(w, 7_700)
    w.h.poll(7_710)
    assert w.why(7_710) is not Why.ORPHAN  # kept from 5_100: 7_210 - 5_100 >= grace
    w.h.poll(8_000, amount(KEY, 1216, 7_400))  # REST catches up
    assert w.why(60_000) is Why.POSITION_OPEN


# ----------------------------------------- (c) a read requested before the mark starts nothing


def test_a_flat_read_requested_before_the_mark_cannot_start_the_post_gap_run() -> None:
    w = suspected()
    w.h.apply(requested(90, 5_140), 5_140)  # in flight when the standby starts to listen
    listening(w, 5_150)
    w.h.apply(snapshot(90, 5_140), 5_170)
    w.h.poll(6_100)
    promote(w, 6_110)
    w.h.poll(6_120)
    assert w.h.book.flat_since(KEY) == 6_100  # the first read requested after the mark


# -------------------------------------------------- (d) a discarded standby changes nothing


def test_a_standby_never_promoted_changes_nothing() -> None:
    """Marked, then dropped by the shell: a fresh connection (or a claim for another id, or
    a promotion after another gap) restarts the run at the post-connect read as before."""
    w = suspected()
    listening(w, 5_150)
    w.h.poll(5_160)
    w.h.poll(6_100)
    promote(w, 6_110, conn_id=3, standby=False)  # a fresh connection: the mark is forgotten
    w.h.poll(6_120)
    assert w.h.book.flat_since(KEY) == 6_120
    promote(w, 6_200, conn_id=2)  # the forgotten standby cannot bring the old run back
    w.h.poll(6_210)
    assert w.h.book.flat_since(KEY) == 6_210


def test_a_promotion_claimed_by_another_connection_is_an_ordinary_gap() -> None:
    w = suspected()
    listening(w, 5_150, conn_id=2)
    w.h.poll(5_160)
    promote(w, 6_110, conn_id=7)
    w.h.poll(6_120)
    assert w.h.book.flat_since(KEY) == 6_120


def test_a_key_expiry_forgets_the_standby() -> None:
    from watchdog.core.events import ListenKeyExpired
    w = suspected()
    listening(w, 5_150)
    w.h.poll(5_160)
    w.apply(ListenKeyExpired(6_000), 6_000)
    w.apply(StreamConnected(2, standby=True), 6_100)
    w.h.poll(6_120)
    assert w.h.book.flat_since(KEY) == 6_120


# ---------------------------------------------------------------------- the run, with hypothesis


@given(st.lists(st.sampled_from(["read", "late", "break", "mark", "promote", "gap"]),
                max_size=60))
def test_a_resumed_run_starts_only_at_a_read_requested_after_the_mark_and_every_break(
        steps: list[str]) -> None:
    """flat_run rule 5 as the book drives it: whatever the order, a run the promotion resumes
    starts at a read requested after its mark and after every break since."""
    run = FlatRun()
    mark_seq: int | None = None
    last_break = 0
    resumed_after: tuple[int, int] | None = None  # (mark, last break before the promotion)
    reads: dict[int, int] = {}  # requested_ms -> seq
    in_flight: list[tuple[int, int]] = []
    for seq, step in enumerate(steps, start=1):
        at_ms = seq * 100
        if step == "read":
            run.shown_flat(at_ms, seq)
            reads[at_ms] = seq
        elif step == "late":  # answered later: requested now
            in_flight.append((at_ms, seq))
        elif step == "break":
            run.broken(seq)
            last_break = seq
        elif step == "mark":
            run.mark(seq)
            mark_seq = seq
        elif step == "gap":  # a gap without promotion: the run breaks, the mark goes
            run.take_standby()
            run.broken(seq)
            last_break, mark_seq = seq, None
        else:  # promote: the run breaks; the first read after it resumes the shadow
            shadow = run.take_standby()
            run.broken(seq)
            if mark_seq is not None:  # else an ordinary gap (the book forgot the mark)
                run.promoted(shadow, resume=True)
                resumed_after = (mark_seq, last_break)
            last_break, mark_seq = seq, None
        if in_flight and step != "late":
            requested_ms, request_seq = in_flight.pop(0)
            run.shown_flat(requested_ms, request_seq)
            reads[requested_ms] = request_seq
        if run.since_ms is not None:
            assert run.proof_ms >= run.since_ms
            start_seq = reads[run.since_ms]
            if resumed_after is not None and start_seq <= last_break:  # kept across a promotion
                assert start_seq > resumed_after[0]
                assert start_seq > resumed_after[1]
