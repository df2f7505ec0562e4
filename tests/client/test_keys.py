"""poswatch.keys: the one key schema, symbols as Binance or ccxt spell them, members both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poswatch.keys import (
    SIDES,
    AccountKeys,
    binance_symbol,
    lease_member_positions,
    member,
    split_member,
)
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.store.keys import member_of, parse_lease_member, parse_member


@pytest.mark.parametrize(("given", "expected"), [
    ("BTCUSDT", "BTCUSDT"),
    ("BTC/USDT:USDT", "BTCUSDT"),
    ("1000PEPE/USDT:USDT", "1000PEPEUSDT"),
    ("ETH/USDC:USDC", "ETHUSDC"),
    ("BTC/USDT:USDT-250328", "BTCUSDT_250328"),
    ("BTCUSDT_250328", "BTCUSDT_250328"),
])
def test_binance_and_ccxt_symbols_name_the_same_binance_symbol(given: str, expected: str) -> None:
    assert binance_symbol(given) == expected


@pytest.mark.parametrize(("given", "why"), [
    ("BTC/USD:BTC", "not a USDⓈ-M"),          # COIN-M: another contract, another position
    ("BTC/USDT", "ccxt USDⓈ-M futures symbol"),  # spot
    ("btc/usdt:usdt", "ccxt USDⓈ-M futures symbol"),
    ("btcusdt", "upper-case Binance symbol"),
    ("BTC/USDT:USDT-2503", "ccxt USDⓈ-M futures symbol"),
    ("", "upper-case Binance symbol"),
])
def test_other_markets_and_malformed_symbols_are_refused_with_the_reason(given: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        binance_symbol(given)


def test_keys_of_a_core_position_key_and_of_its_member_are_the_same() -> None:
    keys = AccountKeys("main")
    key = PositionKey(Symbol("BTCUSDT"), PositionSide.LONG)
    assert keys.of(key) == keys.of_member("BTCUSDT:LONG")
    assert keys.of(key).position == "wd:v1:{main}:pos:BTCUSDT:LONG"
    assert keys.of(key).lease == "wd:v1:{main}:lease:BTCUSDT:LONG"
    assert keys.of(key).reaping == "wd:v1:{main}:reaping:BTCUSDT:LONG"


@pytest.mark.parametrize("bad", ["BTCUSDT", "BTCUSDT:long", "BTCUSDT:", ":BOTH", "BTC USDT:BOTH"])
def test_a_malformed_member_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        split_member(bad)
    with pytest.raises(ValueError, match="expected"):
        AccountKeys("main").of_member(bad)


@given(st.from_regex(r"[A-Z0-9_]{1,40}", fullmatch=True), st.sampled_from(SIDES))
def test_member_round_trips_through_the_daemons_position_key(symbol: str, side: str) -> None:
    text = member(symbol, side)
    assert split_member(text) == (symbol, side)
    key = parse_member(text)
    assert key == PositionKey(Symbol(symbol), PositionSide(side))
    assert member_of(key) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("BTCUSDT:LONG", {("BTCUSDT", "LONG")}),
    ("btcusdt:long", {("BTCUSDT", "LONG")}),
    ("BTCUSDT:sideways", {("BTCUSDT", s) for s in SIDES}),   # unsure: every side waits
    ("BTCUSDT", {("BTCUSDT", s) for s in SIDES}),
    (":BOTH", set()),
])
def test_a_lease_member_written_by_a_bot_is_read_leniently(text: str, expected: set[tuple[str, str]]) -> None:
    assert lease_member_positions(text) == expected
    assert parse_lease_member(text) == {PositionKey(Symbol(s), PositionSide(x)) for s, x in expected}


def test_sentinel_addresses_parse_or_name_the_bad_entry() -> None:
    import pytest

    from poswatch.connection import parse_sentinels

    assert parse_sentinels(["127.0.0.1:26379", "[::1]:26380", "redis-s1:1"]) == [
        ("127.0.0.1", 26379), ("::1", 26380), ("redis-s1", 1)]
    for bad in ("127.0.0.1", ":26379", "host:0", "host:65536", "host:port"):
        with pytest.raises(ValueError, match="host:port"):
            parse_sentinels([bad])


def test_every_key_of_an_account_lives_in_one_cluster_hash_slot() -> None:
    """Redis Cluster runs a script only when all its keys share a slot: the {ACCOUNT} tag does
    it for every key the watchdog and the bots touch, the HA keys included (docs/HA.md)."""
    from redis.crc import key_slot

    from poswatch.keys import AccountKeys

    for account in ("main", "sub-1", "a_b"):
        k = AccountKeys(account)
        p = k.of_member("BTCUSDT:BOTH")
        names = [k.health, k.epoch, k.events, k.positions, k.lease_seq, k.leases, k.windows,
                 k.leader, k.fence, k.instances, p.position, p.lease, p.reaping,
                 k.of_member("ETHUSDT_250328:SHORT").position]
        slots = {key_slot(name.encode()) for name in names}
        assert slots == {key_slot(account.encode())}, (account, slots)
