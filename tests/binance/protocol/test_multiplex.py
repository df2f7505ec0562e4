"""Several accounts on one user-data connection, the pure parts (protocol/multiplex.py)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.binance.connection import user_stream_url
from watchdog.binance.protocol.multiplex import (
    GATHER_MAX_S,
    GATHER_QUIET_S,
    KEYS_PER_CONNECTION,
    URGENT_MAX_S,
    URGENT_QUIET_S,
    Gather,
    attribute,
    events_filter,
    gather_open_in_s,
    shared_stream_url,
    unwrap,
)

KEY = "Kx" * 32
keys_st = st.lists(st.text("abcdefABCDEF0123456789", min_size=8, max_size=64),
                   min_size=1, max_size=KEYS_PER_CONNECTION, unique=True)


def test_rule_1_one_key_is_exactly_the_one_account_url() -> None:
    for base in ("wss://fstream.binance.com", "ws://127.0.0.1:9000/"):
        assert shared_stream_url(base, [KEY]) == user_stream_url(base, KEY)


@given(keys_st)
def test_rule_1_several_keys_each_with_its_own_events_filter_in_order(keys: list[str]) -> None:
    url = shared_stream_url("wss://fstream.binance.com", keys)
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query)
    if len(keys) == 1:
        assert parts.path == "/private/ws"
    else:
        assert parts.path == "/private/stream"
    assert [v for k, v in pairs if k == "listenKey"] == keys
    assert [k for k, _ in pairs] == ["listenKey", "events"] * len(keys)
    assert all(v == events_filter() for k, v in pairs if k == "events")


def test_rule_1_a_key_given_twice_is_carried_once() -> None:
    url = shared_stream_url("wss://x", ["A1", "B2", "A1"])
    assert [v for k, v in parse_qsl(urlsplit(url).query) if k == "listenKey"] == ["A1", "B2"]


def test_rule_2_the_cap_is_enforced_and_the_url_stays_small() -> None:
    keys = [f"{i:02d}" + "k" * 62 for i in range(KEYS_PER_CONNECTION)]
    assert len(shared_stream_url("wss://fstream.binance.com", keys)) < 4096
    with pytest.raises(ValueError, match="1 to 20"):
        shared_stream_url("wss://x", [*keys, "one-more"])
    with pytest.raises(ValueError, match="not 0"):
        shared_stream_url("wss://x", [])


def test_events_filter_names_the_algo_event_as_binance_spells_it() -> None:
    assert "ALGO_UPDATE" in events_filter().split("/")
    assert "listenKeyExpired" in events_filter().split("/")


@pytest.mark.parametrize(("frame", "expected"), [
    ({"stream": "K1", "data": {"e": "ACCOUNT_UPDATE"}}, ("K1", {"e": "ACCOUNT_UPDATE"})),
    ({"e": "ACCOUNT_UPDATE"}, None),                       # a raw frame: not wrapped
    ({"stream": 5, "data": {"e": "x"}}, None),             # no name
    ({"stream": "K1", "data": [1, 2]}, None),              # data not an event
    ({"result": None, "id": 1}, None),                     # a reply to a request
    ([{"stream": "K1"}], None),
    ("text", None),
])
def test_rule_3_unwrap(frame: object, expected: object) -> None:
    assert unwrap(frame) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("K1", "K1"), ("K2@ACCOUNT_UPDATE", "K2"), ("K3", None), ("", None), ("K1x", None)])
def test_rule_3_attribution_by_stream_name(name: str, expected: str | None) -> None:
    assert attribute(name, {"K1", "K2"}) == expected


def test_rule_4_full_opens_at_once() -> None:
    gather = Gather(first_at=0.0, last_at=0.0)
    for _ in range(KEYS_PER_CONNECTION):
        gather.join(0.0, urgent=False)
    assert gather_open_in_s(gather, 0.0, missing=5) == 0.0


def test_rule_4_urgent_opens_once_every_account_without_a_stream_joined() -> None:
    gather = Gather(first_at=10.0, last_at=10.0)
    gather.join(10.0, urgent=True)
    assert gather_open_in_s(gather, 10.0, missing=2) == pytest.approx(URGENT_QUIET_S)
    gather.join(10.2, urgent=True)
    assert gather_open_in_s(gather, 10.2, missing=1) == pytest.approx(URGENT_QUIET_S)
    gather.join(10.9, urgent=True)
    assert gather_open_in_s(gather, 10.9, missing=0) == 0.0


def test_rule_4_urgent_never_waits_past_its_maximum_for_a_late_account() -> None:
    gather = Gather(first_at=0.0, last_at=0.0)
    gather.join(0.0, urgent=True)
    for t in (0.25, 0.5, 0.75):
        gather.join(t, urgent=True)
    assert gather_open_in_s(gather, 0.75, missing=3) == pytest.approx(URGENT_MAX_S - 0.75)
    assert gather_open_in_s(gather, 2.0, missing=3) == 0.0


def test_rule_4_rotations_wait_for_quiet_and_at_most_their_maximum() -> None:
    gather = Gather(first_at=0.0, last_at=0.0)
    gather.join(0.0, urgent=False)
    assert gather_open_in_s(gather, 0.0, missing=0) == pytest.approx(GATHER_QUIET_S)
    t = 0.0
    while t < GATHER_MAX_S + 5:
        t += GATHER_QUIET_S / 2
        gather.join(t, urgent=False)
    assert gather_open_in_s(gather, t, missing=0) == 0.0


def test_rule_4_one_urgent_joiner_makes_the_whole_gather_urgent() -> None:
    gather = Gather(first_at=0.0, last_at=0.0)
    gather.join(0.0, urgent=False)
    gather.join(0.1, urgent=True)
    assert gather_open_in_s(gather, 0.1, missing=0) == 0.0


@given(st.floats(0, 100), st.lists(st.tuples(st.floats(0, 30), st.booleans()), min_size=1,
                                    max_size=40), st.integers(0, 50))
def test_rule_4_a_gather_never_waits_longer_than_its_maximum(
        start: float, joins: list[tuple[float, bool]], missing: int) -> None:
    gather = Gather(first_at=start, last_at=start)
    t = start
    for step, urgent in joins:
        t += step
        gather.join(t, urgent=urgent)
    limit = URGENT_MAX_S if gather.urgent else GATHER_MAX_S
    assert gather_open_in_s(gather, t, missing=missing) <= max(0.0, start + limit - t) + 1e-9
    assert gather_open_in_s(gather, start + limit, missing=missing) <= 1e-9
