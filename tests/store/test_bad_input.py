"""docs/RULES.md rule 3 (issue 12, "bad input from a bot poisons everyone"): every Lua script
checks its arguments before its first write. Garbage is fed to every script by raw EVALSHA
against a real redis-server (hypothesis mutates a valid call: replaced, dropped and extra
keys/arguments); a refused call must answer one clear ``bad <name>`` error and leave the
dataset byte-for-byte unchanged, and no call may leave a lease without a TTL or an expiry
beyond the longest lease.

On main, ``begin`` with ``ttl_ms="inf"`` wrote the lease hash, then failed on PEXPIRE: a lease
without TTL, and every later bot got ``lease_held``."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poswatch.calls import TouchEntry, VetoCalls, WatchdogCalls
from poswatch.scripts import BOT_SCRIPTS, WATCHDOG_SCRIPTS, script_sha, script_source
from tests.support.store import ACCOUNT, position_key
from watchdog.store.keys import AccountKeys

K = AccountKeys(ACCOUNT)
P = K.of(position_key("BTCUSDT"))
M = P.member
LEASE_TTL_MAX_MS = 600_000
LINGER_MS = 60_000
FENCE = "7"  # the fencing token base_state gives the watchdog (instance "inst")


def valid_calls(now: int) -> dict[str, tuple[list[str], list[str]]]:
    """One well-formed call per script, as the publisher and the client send them."""
    return {
        "check": ([K.health, P.position, P.reaping, P.lease], [""]),
        "begin": ([P.lease, K.lease_seq, K.leases, K.events],
                  [M, "bot-2", "5000", "", K.channel, K.health, P.position, P.reaping]),
        "confirm": ([P.lease, K.events], [M, "1", "", K.channel, K.health, P.position]),
        "end": ([P.lease, K.leases, K.windows, K.events], [M, "1", "ok", K.channel, K.health]),
        "publish_position": ([P.position, K.positions, P.lease, K.leases, K.events, K.health,
                              K.fence],
                             [M, "5", "closed", "confirmed", "0", "0", "rest", str(now), str(now),
                              "", "60000", K.channel, "BTCUSDT", "BOTH", "1", FENCE]),
        "retract_position": ([P.position, K.positions, K.fence],
                             [M, "stream_lost", "5", "BTCUSDT", "BOTH", FENCE]),
        "revoke_lease": ([P.lease, K.leases, K.events, K.health, K.fence],
                         [M, "operator", K.channel, FENCE]),
        "leased": ([K.leases], []),
        "lease_ends": ([K.leases], []),
        "heartbeat": ([K.health, K.fence], ["5000", FENCE, str(now), "stream", "live"]),
        "emit_event": ([K.events, K.health, K.fence], [K.channel, FENCE, "kind", "alert", "code", "x"]),
        "mark_stopped": ([K.health, K.events, K.fence, K.leader, K.instances],
                         ["inst", K.channel, FENCE]),
        "touch_verified": ([K.positions, K.leases, K.events, K.health, K.fence, P.position, P.lease],
                           ["60000", K.channel, FENCE, str(now), "1", "closed"]),
        "mark_firing": ([P.position, K.fence], ["4000000017", "TRIGGERING", str(now), "", FENCE]),
        "mark_reaping": ([P.reaping, K.fence], [FENCE, "orphan_removal", "5000"]),
        "acquire_lead": ([K.leader, K.fence, K.instances], ["inst-2", "1500", "4500"]),
        "renew_lead": ([K.leader, K.fence, K.instances], ["inst", FENCE, "1500", "4500"]),
        "resign_lead": ([K.leader, K.instances], ["inst-2"]),
        "register_instance": ([K.leader, K.instances], ["inst-2", "4500"]),
        "set_protection": ([P.position, K.fence], ["none", str(now), "wd-guard-1-1", FENCE]),
    }


ALL_SCRIPTS = BOT_SCRIPTS + WATCHDOG_SCRIPTS

GARBAGE = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "-1", "0", "", " 5", "5 ", "1e3", "0x10", "-0", "1.5",
                     "99999999999999999999", "9007199254740993", "600001", "3600001",
                     "btcusdt:BOTH", "BTCUSDT", "BTCUSDT:BOTHX", ":", "\x00", "a\nb", "é",
                     "wd:v1:{other}:health", K.health, K.events, P.position, P.lease, "at_ms",
                     "kind", "x" * 300]),
    st.text(max_size=12),
    st.integers(-(2**64), 2**64).map(str),
)


@st.composite
def garbled(draw: st.DrawFn, name: str, now: int) -> tuple[list[str], list[str]]:
    keys, args = (list(part) for part in valid_calls(now)[name])
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["key", "arg", "arg", "arg", "drop", "extra"]))
        if where == "key" and keys:
            keys[draw(st.integers(0, len(keys) - 1))] = draw(GARBAGE)
        elif where == "arg" and args:
            args[draw(st.integers(0, len(args) - 1))] = draw(GARBAGE)
        elif where == "drop" and (keys or args):
            target = keys if not args or (keys and draw(st.booleans())) else args
            target.pop(draw(st.integers(0, len(target) - 1)))
        else:
            (keys if draw(st.booleans()) else args).append(draw(GARBAGE))
    return keys, args


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    for name in ALL_SCRIPTS:
        client.script_load(script_source(name))
    yield client
    client.close()


def evalsha(r: redis.Redis, name: str, keys: list[str], args: list[str]) -> object:
    return r.evalsha(script_sha(name), len(keys), *keys, *args)  # type: ignore[arg-type]


def base_state(r: redis.Redis) -> None:
    """A live watchdog, BTCUSDT:BOTH open and fresh, a lease (token 1) held by bot-1."""
    r.flushall()
    now = int(time.time() * 1000)
    calls = valid_calls(now)
    r.set(K.fence, FENCE)
    r.set(K.leader, "inst", px=600_000)
    evalsha(r, "heartbeat", calls["heartbeat"][0], ["60000", FENCE, str(now), "stream", "live",
                                                   "veto_max_age_ms", "5000"])
    publish_keys = calls["publish_position"][0]
    evalsha(r, "publish_position", publish_keys,
            [M, "1", "open", "confirmed", "0.010", "100.5", "stream", str(now), str(now), "",
             "60000", K.channel, "BTCUSDT", "BOTH", "0", FENCE])
    assert evalsha(r, "begin", calls["begin"][0],
                   [M, "bot-1", "60000", "", K.channel, K.health, P.position, P.reaping])[0] == 1


def dataset(r: redis.Redis) -> dict[bytes, tuple[object, ...]]:
    """Every key's type, serialized value and whether it has a TTL."""
    return {key: (r.type(key), r.dump(key), r.pttl(key) > 0) for key in r.scan_iter(count=1000)}


def assert_no_poison(r: redis.Redis) -> None:
    now = int(time.time() * 1000)
    for key in r.scan_iter(match=f"{K.prefix}:lease:*"):
        ttl = r.pttl(key)  # -1 = no TTL (the poison); -2/0 = expired between SCAN and PTTL
        assert ttl != -1, (key, ttl)
        assert ttl <= LEASE_TTL_MAX_MS + LINGER_MS, (key, ttl)
        expires = r.hget(key, "expires_ms")
        if expires is not None:
            assert int(expires) <= now + LEASE_TTL_MAX_MS + 1_000
    for member, score in r.zrange(K.leases, 0, -1, withscores=True):
        assert math.isfinite(score), (member, score)
        assert score <= now + LEASE_TTL_MAX_MS + 1_000, (member, score)
    for key in r.scan_iter(match=f"{K.prefix}:pos:*"):
        fields = r.hgetall(key)
        assert fields.get(b"state") in (b"open", b"closed", b"unknown"), fields
        if fields.get(b"state") == b"closed":
            assert r.pttl(key) != -1, key
    # A 1 ms TTL may run out between EXISTS and PTTL (0 or -2); only -1 (no TTL) is the poison.
    assert r.pttl(K.health) != -1


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_garbage_is_refused_cleanly_by_every_script(r: redis.Redis, name: str) -> None:
    now = int(time.time() * 1000)
    outcomes: list[str] = []

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(call=garbled(name, now))
    def feed(call: tuple[list[str], list[str]]) -> None:
        base_state(r)
        before = dataset(r)
        keys, args = call
        try:
            evalsha(r, name, keys, args)
            outcomes.append("ran")
        except redis.ResponseError as exc:
            outcomes.append("refused")
            message = str(exc)
            # one clear line, naming the argument (or the fencing token a garbled call carried)
            assert message.startswith(("bad ", "FENCED ")), message
            assert dataset(r) == before, f"{name} wrote before refusing: {message}"
        assert_no_poison(r)

    feed()
    assert "refused" in outcomes, outcomes  # the garbage did reach the checks


def test_every_script_has_a_valid_call_that_passes(r: redis.Redis) -> None:
    assert set(valid_calls(0)) == set(ALL_SCRIPTS)
    for name, (keys, args) in valid_calls(int(time.time() * 1000)).items():
        base_state(r)
        evalsha(r, name, keys, args)  # no error
        assert_no_poison(r)


@pytest.mark.parametrize("ttl_ms", ["inf", "-1", "0", "nan", "1e9", "600001", "", "5.5", " 5"])
def test_begin_with_a_bad_ttl_leaves_no_lease(r: redis.Redis, ttl_ms: str) -> None:
    base_state(r)
    r.delete(P.lease)
    r.zrem(K.leases, M)
    before = dataset(r)
    keys, args = valid_calls(0)["begin"]
    args = list(args)
    args[2] = ttl_ms
    with pytest.raises(redis.ResponseError, match="bad ttl_ms: expected an integer"):
        evalsha(r, "begin", keys, args)
    assert dataset(r) == before
    args[2] = "5000"
    assert evalsha(r, "begin", keys, args)[:2] == [1, b"ok"]  # the next bot is not locked out


@pytest.mark.parametrize("expires_ms", ["inf", "nan", "9" * 20, "abc"])
def test_a_hand_written_lease_record_does_not_lock_the_position(r: redis.Redis,
                                                                 expires_ms: str) -> None:
    """Bots may write their own lease keys (ACL): an impossible expiry is not a held lease."""
    base_state(r)
    r.hset(P.lease, "expires_ms", expires_ms)
    r.persist(P.lease)
    keys, args = valid_calls(0)["begin"]
    reply = evalsha(r, "begin", keys, args)
    assert reply[:2] == [1, b"ok"], reply
    assert_no_poison(r)


def test_the_typed_builders_send_exactly_the_well_formed_calls() -> None:
    """poswatch.calls builds what the publisher and the client send: the calls above, which
    every script accepts (so the builders and the Lua cannot drift apart)."""
    now, fence = 1_700_000_000_000, int(FENCE)
    w, bot = WatchdogCalls(K), VetoCalls(ACCOUNT)
    built = [
        bot.check("BTCUSDT", "BOTH"), bot.begin("BTCUSDT", "BOTH", "bot-2", 5000),
        bot.confirm("BTCUSDT", "BOTH", 1), bot.end("BTCUSDT", "BOTH", 1, "ok"),
        w.publish_position(P, version=5, state="closed", knowledge="confirmed", amount="0",
                           entry_price="0", source="rest", as_of_ms=now, verified_ms=now, reason="",
                           closed_ttl_ms=60000, clear_firing=True, fence=fence),
        w.retract_position(P, "stream_lost", 5, fence), w.revoke_lease(P, "operator", fence),
        w.leased(), w.lease_ends(), w.heartbeat(5000, fence, now, [("stream", "live")]),
        w.emit_event("alert", [("code", "x")], fence), w.mark_stopped("inst", fence),
        w.touch_verified([TouchEntry(P, 1, "closed")], now, 60000, fence),
        w.mark_firing(P, fence, algo_id=4000000017, status="TRIGGERING", since_ms=now),
        w.mark_reaping(P, fence, "orphan_removal", 5000), w.acquire_lead("inst-2", 1500),
        w.renew_lead("inst", fence, 1500), w.resign_lead("inst-2"),
        w.register_instance("inst-2", 1500),
        w.set_protection(P, "none", now, "wd-guard-1-1", fence),
    ]
    expected = valid_calls(now)
    assert sorted(call.script for call in built) == sorted(expected)
    for call in built:
        assert (call.keys, [str(arg) for arg in call.args]) == expected[call.script], call.script
