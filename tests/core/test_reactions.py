"""What an event asks for beside fusion (``core/reactions.py``, book rule 7).

The book's side (these effects follow its own, whatever it holds) is tested in test_book.py.
"""

from __future__ import annotations

from watchdog.core.blindness import BLIND_CODE
from watchdog.core.effects import Notify, RaiseAlert, ReadNow, Reconnect, RequestSnapshot
from watchdog.core.events import CanaryAlert, MalformedFrame, MarginCall, Tick
from watchdog.core.model import Symbol
from watchdog.core.reactions import asks

from .facts import algo_update, amount, key, order_update, stream, trade_lite

BTC, ETH = Symbol("BTCUSDT"), Symbol("ETHUSDT")


def _fill_read(symbol: Symbol) -> RequestSnapshot:
    return RequestSnapshot(reason=f"fill on {symbol}", symbols=frozenset({symbol}))


def test_every_stream_event_on_a_symbol_reads_it_now_and_a_fill_asks_its_positions() -> None:
    assert asks(stream(key("BTCUSDT"), "1", 10)) == [ReadNow(BTC)]
    assert asks(order_update("BTCUSDT", 10)) == [ReadNow(BTC)]
    assert asks(order_update("BTCUSDT", 10, last_filled="2")) == [ReadNow(BTC), _fill_read(BTC)]
    assert asks(trade_lite("ETHUSDT", 10)) == [ReadNow(ETH), _fill_read(ETH)]
    assert asks(algo_update("ETHUSDT", 10)) == [ReadNow(ETH)]


def test_a_margin_call_alerts_per_row_and_asks_their_symbols() -> None:
    rows = (amount(key("BTCUSDT"), "2", 10), amount(key("ETHUSDT"), "-1", 10))
    effects = asks(MarginCall(event_time_ms=10, positions=rows))
    assert [e.code for e in effects if isinstance(e, RaiseAlert)] == ["margin_call"] * 2
    assert effects[-1] == RequestSnapshot(reason="margin call", symbols=frozenset({BTC, ETH}))
    assert asks(MarginCall(event_time_ms=10, positions=())) == []


def test_a_malformed_frame_asks_every_symbol_and_the_canary_leaves_as_its_verdict() -> None:
    assert asks(MalformedFrame(problem="bad json")) == [
        RequestSnapshot(reason="malformed user-stream frame: bad json")]
    blind = asks(CanaryAlert(code=BLIND_CODE, message="silent"))
    assert [type(e) for e in blind] == [RaiseAlert, Notify, Reconnect]
    assert asks(CanaryAlert(code="canary_late", message="late")) == [
        RaiseAlert("canary_late", "late")]
    assert asks(Tick()) == []
