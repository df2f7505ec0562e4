"""Rule 3 of the book across a reconnect: the gap begins at the loss, so a connect that ends a
disconnection keeps only what a snapshot requested after that loss confirmed."""

from __future__ import annotations

from tests.core.facts import BTC, ETH, amount, failed, requested, snapshot, stream
from watchdog.core.book import PositionBook
from watchdog.core.effects import Effect, Publish, Reverified
from watchdog.core.events import ListenKeyExpired, StreamConnected, StreamLost
from watchdog.core.model import Knowledge, PositionKey, PositionState


class Book:
    def __init__(self) -> None:
        self.book = PositionBook()
        self.next_id = 1

    def poll(self, now_ms: int, *rows: object) -> list[Effect]:
        rid = self.request(now_ms)
        return self.answer(rid, now_ms, *rows)

    def request(self, now_ms: int) -> int:
        rid, self.next_id = self.next_id, self.next_id + 1
        self.book.apply(requested(rid, now_ms), now_ms)
        return rid

    def answer(self, rid: int, now_ms: int, *rows: object) -> list[Effect]:
        return self.book.apply(snapshot(rid, now_ms, *rows), now_ms)  # type: ignore[arg-type]

    def knowledge(self, k: PositionKey = BTC) -> Knowledge:
        view = self.book.view(k)
        assert view is not None
        return view.knowledge


def live_with_btc_open() -> Book:
    b = Book()
    b.book.apply(StreamConnected(1), 0)
    b.poll(10, amount(BTC, 1, 5), amount(ETH, 2, 5))
    assert b.book.stream_state == "live"
    return b


def test_read_after_the_loss_carries_over_the_connect() -> None:
    b = live_with_btc_open()
    b.book.apply(StreamLost(1, "blind: REST shows a change"), 100)
    assert b.knowledge() is Knowledge.SUSPECT
    b.poll(150, amount(BTC, 1, 5), amount(ETH, 2, 5))  # requested after the loss
    assert b.knowledge() is Knowledge.CONFIRMED
    effects = b.book.apply(StreamConnected(2), 200)
    assert [e for e in effects if isinstance(e, Publish | Reverified)] == []  # no flap to unknown
    assert b.knowledge() is Knowledge.CONFIRMED
    assert b.book.stream_state == "gap"  # stream trust still waits for a read after the connect
    assert b.book.flat_since(BTC) is None


def test_stream_fact_after_the_connect_does_not_confirm_a_carried_key() -> None:
    b = live_with_btc_open()
    b.book.apply(StreamLost(1, "1006"), 100)
    b.poll(150, amount(BTC, 1, 5), amount(ETH, 2, 5))
    b.book.apply(StreamConnected(2), 200)
    b.book.apply(stream(BTC, 3, 210), 210)
    assert b.knowledge() is Knowledge.SUSPECT
    b.poll(300, amount(BTC, 3, 210), amount(ETH, 2, 5))
    assert b.knowledge() is Knowledge.CONFIRMED
    assert b.book.stream_state == "live"


def test_keys_not_read_since_the_loss_stay_suspect() -> None:
    b = live_with_btc_open()
    early = b.request(90)  # requested before the loss, answered during it
    b.book.apply(StreamLost(1, "1006"), 100)
    b.answer(early, 150, amount(BTC, 1, 5), amount(ETH, 2, 5))
    b.book.apply(StreamConnected(2), 200)
    assert b.knowledge(BTC) is Knowledge.SUSPECT
    assert b.knowledge(ETH) is Knowledge.SUSPECT


def test_a_failed_read_after_the_loss_proves_nothing() -> None:
    b = live_with_btc_open()
    b.book.apply(StreamLost(1, "1006"), 100)
    rid = b.request(150)
    b.book.apply(failed(rid), 160)
    b.book.apply(StreamConnected(2), 200)
    assert b.knowledge() is Knowledge.SUSPECT


def test_a_connect_without_a_loss_before_it_doubts_everything() -> None:
    b = live_with_btc_open()
    b.book.apply(StreamConnected(2), 100)  # no StreamLost: the old connection's events may be lost
    assert b.knowledge() is Knowledge.SUSPECT
    view = b.book.view(BTC)
    assert view is not None
    assert view.state is PositionState.UNKNOWN


def test_a_second_loss_during_the_disconnection_restarts_the_proof() -> None:
    b = live_with_btc_open()
    b.book.apply(StreamLost(1, "1006"), 100)
    b.poll(150, amount(BTC, 1, 5), amount(ETH, 2, 5))
    b.book.apply(ListenKeyExpired(160), 160)  # a new loss: what was read before it is old again
    b.book.apply(StreamConnected(2), 200)
    assert b.knowledge() is Knowledge.SUSPECT


def test_a_carried_flat_key_starts_a_new_flat_run_only_after_the_connect() -> None:
    b = live_with_btc_open()
    b.poll(3000, amount(ETH, 2, 5))  # BTC flat
    assert b.book.flat_since(BTC) == 3000
    b.book.apply(StreamLost(1, "1006"), 3100)
    b.poll(3150, amount(ETH, 2, 5))
    assert b.book.flat_since(BTC) == 3150
    b.book.apply(StreamConnected(2), 3200)
    view = b.book.view(BTC)
    assert view is not None
    assert view.state is PositionState.CLOSED
    assert b.book.flat_since(BTC) is None  # rule 9: the gap broke the run
    b.poll(3300, amount(ETH, 2, 5))
    assert b.book.flat_since(BTC) == 3300
