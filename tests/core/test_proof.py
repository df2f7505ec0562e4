"""The stream-proof machine (``core/proof.py``): found blind, the stream stays unproven across
reconnects until REST corroborates an event it delivered."""

from __future__ import annotations

import itertools

import pytest

from tests.core.facts import BTC, ETH, amount, requested, snapshot, stream, trade_lite
from tests.core.reaper_support import KEY, algo_row, algo_update, order_update
from tests.core.reaper_support import snapshot as orders_snapshot
from watchdog.core.effects import Effect, Notify, RaiseAlert
from watchdog.core.events import Event, ListenKeyExpired, StreamConnected, StreamLost, Tick
from watchdog.core.model import AlgoStatus
from watchdog.core.proof import TRANSITIONS, Signal, StreamProof, next_state

BLIND = RaiseAlert("stream_blind", "BTCUSDT:BOTH: REST shows amount 0 but the stream last "
                   "reported 1", BTC)


def proven(effects: list[Effect]) -> bool:
    return any(isinstance(e, Notify) and e.kind == "stream_proven" for e in effects)


@pytest.fixture
def p() -> StreamProof:
    proof = StreamProof(max_rest_lag_ms=2000)
    proof.apply(StreamConnected(1), 0)
    proof.apply(requested(1, 1000), 1000, [BLIND])
    assert (proof.state, proof.since_ms, proof.reason) == ("unproven", 1000, BLIND.message)
    return proof


def test_the_table_is_total_and_only_corroboration_proves() -> None:
    for state, signal in itertools.product(TRANSITIONS, Signal):
        assert next_state(state, signal) in TRANSITIONS
    assert [s for s in TRANSITIONS if next_state(s, Signal.BLIND) != "unproven"] == []
    assert [s for s in TRANSITIONS if next_state(s, Signal.GAP) != s] == []
    assert [s for s in TRANSITIONS if next_state(s, Signal.CORROBORATED) != "proven"] == []


def test_a_new_stream_starts_proven() -> None:
    proof = StreamProof()
    assert proof.apply(StreamConnected(1), 0) == []
    assert (proof.state, proof.since_ms, proof.reason) == ("proven", 0, "")


@pytest.mark.parametrize("gap", [StreamLost(1, "blind: …"), StreamConnected(2),
                                 ListenKeyExpired(5)])
def test_a_reconnect_proves_nothing(p: StreamProof, gap: Event) -> None:
    """The issue-12 hole: after the blind reconnect, the new connection is still unproven."""
    p.apply(gap, 2000)
    p.apply(StreamConnected(3), 2100)
    p.apply(requested(2, 2200), 2200)
    p.apply(snapshot(2, 2200), 2300)  # reconciled: stream_state would say live
    assert p.state == "unproven"


def test_a_position_fact_corroborated_by_a_later_read_proves_the_stream(p: StreamProof) -> None:
    p.apply(stream(BTC, 0, 1900), 2000)
    p.apply(requested(2, 2100), 2100)
    effects = p.apply(snapshot(2, 2100), 2200)  # absent: flat, as the stream said
    assert proven(effects)
    assert (p.state, p.since_ms, p.reason) == ("proven", 0, "")


def test_a_read_requested_before_the_fact_cannot_corroborate_it(p: StreamProof) -> None:
    p.apply(requested(2, 1800), 1800)
    p.apply(stream(BTC, 0, 1900), 2000)
    assert not proven(p.apply(snapshot(2, 1800), 2200))
    p.apply(requested(3, 2300), 2300)
    assert proven(p.apply(snapshot(3, 2300), 2400))


def test_a_read_that_disagrees_drops_the_claim(p: StreamProof) -> None:
    p.apply(stream(BTC, 2, 1900), 2000)
    p.apply(requested(2, 2100), 2100)
    assert not proven(p.apply(snapshot(2, 2100, amount(BTC, 3, 2050)), 2200))
    p.apply(requested(3, 2300), 2300)
    assert not proven(p.apply(snapshot(3, 2300, amount(BTC, 2, 1900)), 2400))  # claim gone


def test_a_read_scoped_to_another_symbol_says_nothing(p: StreamProof) -> None:
    p.apply(stream(BTC, 2, 1900), 2000)
    p.apply(requested(2, 2100, "ETHUSDT"), 2100)
    assert not proven(p.apply(snapshot(2, 2100, amount(ETH, 1, 100), symbols=("ETHUSDT",)), 2200))
    p.apply(requested(3, 2300, "BTCUSDT"), 2300)
    assert proven(p.apply(snapshot(3, 2300, amount(BTC, 2, 1900), symbols=("BTCUSDT",)), 2400))


def test_claims_from_before_a_gap_or_a_new_verdict_prove_nothing(p: StreamProof) -> None:
    p.apply(stream(BTC, 0, 1900), 2000)
    p.apply(StreamConnected(2), 2050)
    p.apply(requested(2, 2100), 2100)
    assert not proven(p.apply(snapshot(2, 2100), 2200))
    p.apply(stream(BTC, 0, 2300), 2300)
    p.apply(requested(3, 2400), 2400, [BLIND])  # found blind again meanwhile
    assert not proven(p.apply(snapshot(3, 2400), 2500))
    assert p.since_ms == 1000  # the spell's first verdict: the age an operator sees


def test_an_algo_event_corroborated_by_the_orders_list_proves_the_stream(p: StreamProof) -> None:
    p.apply(algo_update(7, AlgoStatus.NEW, at_ms=1500), 1500)
    effects = p.apply(orders_snapshot(algos=(algo_row(7, created_ms=1500),), at_ms=1600), 1600)
    assert proven(effects)  # listed: it exists, however REST lags


def test_an_order_ending_is_corroborated_only_past_the_lag_floor(p: StreamProof) -> None:
    p.apply(order_update(8, "CANCELED", at_ms=1500, key=KEY), 1500)
    symbols = frozenset({KEY.symbol})
    assert not proven(p.apply(orders_snapshot(at_ms=3000, symbols=symbols), 3000))  # may lag
    assert proven(p.apply(orders_snapshot(at_ms=3600, symbols=symbols), 3600))


def test_fills_and_ticks_alone_prove_nothing(p: StreamProof) -> None:
    for event in (trade_lite("BTCUSDT", 1900), Tick()):
        assert p.apply(event, 2000) == []
    assert p.state == "unproven"


def test_events_while_proven_are_not_claims() -> None:
    proof = StreamProof()
    proof.apply(stream(BTC, 1, 900), 1000)
    proof.apply(requested(1, 1000), 1000, [BLIND])
    proof.apply(requested(2, 1100), 1100)
    assert not proven(proof.apply(snapshot(2, 1100, amount(BTC, 1, 900)), 1200))
