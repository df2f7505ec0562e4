"""How script calls travel (watchdog/store/runner.py), on a real redis-server: a single call
packed by hiredis answers as the client's ``evalsha`` did: replies, error replies, a lost script,
a connection Redis dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from unittest.mock import patch

import pytest
import redis.asyncio
from hiredis import pack_command
from hypothesis import given, settings
from hypothesis import strategies as st
from redis import exceptions as redis_errors

from poswatch.calls import ScriptCall, WatchdogCalls
from tests.support.store import make_view, now_ms, position_key, publisher_on, take_lead
from watchdog.core.effects import Publish, Reverified
from watchdog.core.model import PositionState
from watchdog.store import runner as runner_module
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher


@pytest.fixture
async def pub(redis_url: str) -> AsyncIterator[RedisPublisher]:
    publisher = publisher_on(redis_url)
    assert publisher._runner.hiredis_packs  # the path under test (the fast extra is installed)
    await publisher.start()
    await take_lead(publisher)
    yield publisher
    await publisher.close()


async def test_a_single_call_after_redis_dropped_the_connection_is_written(
        pub: RedisPublisher, r: redis.asyncio.Redis) -> None:
    assert await pub.heartbeat({"stream": "live"}) is False
    killed = await r.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1  # the publisher's pooled connection is gone
    assert await pub.heartbeat({"stream": "live"}, wall_ms=now_ms()) is False  # reconnected, written
    assert await r.hget(pub.keys.health, "stream") == "live"


async def test_a_single_call_replies_as_evalsha_does(pub: RedisPublisher,
                                                      r: redis.asyncio.Redis) -> None:
    secs, micros, leases = await pub._runner.one(pub.calls.lease_ends())
    assert int(secs) > 0
    assert int(micros) >= 0
    assert list(leases) == []
    with pytest.raises(redis_errors.ResponseError, match="expected"):
        await pub._runner.one(ScriptCall("touch_verified", [pub.keys.positions], []))
    await r.script_flush()  # Redis lost the scripts: loaded again, then answered
    assert list((await pub._runner.one(pub.calls.lease_ends()))[2]) == []


# ---------------------------------------------------------------- rule 1: long KEYS packed once

_texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_args = st.lists(st.one_of(_texts, st.integers(-10**15, 10**15)), max_size=8)


@settings(max_examples=200, deadline=None)
@given(runs=st.lists(st.tuples(st.lists(_texts, max_size=40), st.integers(1, 3), _args),
                     min_size=1, max_size=6))
def test_the_bytes_are_pack_commands_whatever_is_kept(
        runs: list[tuple[list[str], int, list[str | int]]]) -> None:
    """Each KEYS list is sent with new ARGV one to three times, the very same list object (the
    kept bytes), then an equal new list: every call's chunks are ``pack_command``'s bytes."""
    runner = publisher_on("redis://127.0.0.1:1/0")._runner  # packs only: never connects
    with patch.object(runner_module, "_KEPT_KEYS", 0):  # every list kept, even the short ones
        for keys, times, args in runs:
            for lst in (keys, list(keys)):
                for i in range(times):
                    call = ScriptCall("touch_verified", lst, [*args, i])
                    assert b"".join(runner._packed(call)) == pack_command(call.command())  # type: ignore[arg-type]


async def test_a_kept_keys_list_writes_what_the_old_packing_wrote(
        redis_url: str, r: redis.asyncio.Redis) -> None:
    """300 positions re-verified read after read (the kept KEYS), then a closure among them and
    a new position (new runs), a hash lost: the same Redis contents as the same effects written
    by the old path (each call built afresh and packed whole, as at c5a007c) on a second
    account."""
    fast, old = publisher_on(redis_url), publisher_on(redis_url)
    old.keys = AccountKeys("test-old")
    old.calls = WatchdogCalls(old.keys)
    old._names = {}
    old._runner._packed = lambda call: [pack_command(call.command())]  # type: ignore[method-assign,arg-type]
    old._touch_call = lambda views, verified_ms: old.calls.touch_verified(  # type: ignore[method-assign]
        [(old._names_of(v.key), v.version - 1, v.state._value_) for v in views], verified_ms,
        old._closed_ttl_ms, old._fence)
    keys = [position_key(f"S{i:03d}USDT") for i in range(300)]
    ms = now_ms()
    views = [make_view(key, version=1, verified_ms=ms) for key in keys]
    try:
        for store in (fast, old):
            await store.start()
            await take_lead(store)
            await store.run_many([Publish(view) for view in views])
        kept: list[str] | None = None
        for step in range(6):
            ms += 900
            if step == 3:  # a closure among them: its lease key joins the run
                views[7] = make_view(keys[7], state=PositionState.CLOSED, version=views[7].version,
                                     verified_ms=ms - 900)
                for store in (fast, old):
                    await store.run_many([Publish(views[7])])
            if step == 4:  # Redis lost one hash: the touch misses it, written in full
                await r.delete(fast._names_of(keys[9]).position, old._names_of(keys[9]).position)
            if step == 5:  # a new position at the end of the run
                extra = make_view(position_key("NEWUSDT"), version=1, verified_ms=ms - 900)
                views.append(extra)
                for store in (fast, old):
                    await store.run_many([Publish(extra)])
            views = [v.reverified(ms, v.version + 1) for v in views]
            for store in (fast, old):
                assert await store.run_many([Reverified(tuple(views), ms)])
            if step in (1, 2):
                assert fast._runner._kept_keys is kept  # the same run: packed once
            kept = fast._runner._kept_keys
            assert await _contents(r, "test") == await _contents(r, "test-old"), step
    finally:
        await fast.close()
        await old.close()


async def _contents(r: redis.asyncio.Redis, account: str) -> dict[str, object]:
    """Every position hash and the index of ``account`` (Redis' clock and the fence left out)."""
    prefix = f"wd:v1:{{{account}}}:"
    found: dict[str, object] = {}
    async for key in r.scan_iter(match=prefix + "*", count=1000):
        name = key[len(prefix):]
        kind = await r.type(key)
        if kind == "hash" and name.startswith("pos:"):
            found[name] = ({f: v for f, v in (await r.hgetall(key)).items()
                            if f not in ("updated_ms", "fence")}, await r.pttl(key) > 0)
        elif kind == "set":
            found[name] = sorted(await r.smembers(key))
    assert len(found) > 300
    return found
