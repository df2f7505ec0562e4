"""Property: whatever order (or concurrency) publishes arrive in, Redis ends at the newest fact."""

from __future__ import annotations

import asyncio

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.store import ACCOUNT, make_view, position_key, take_lead
from watchdog.core.model import PositionState
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEY = position_key()
STATES = st.sampled_from([PositionState.OPEN, PositionState.CLOSED, PositionState.UNKNOWN])
FACTS = st.lists(st.tuples(st.integers(min_value=1, max_value=50), STATES), min_size=1, max_size=12)


async def _publish_all(url: str, facts: list[tuple[int, PositionState]], concurrent: bool) -> None:
    pub = RedisPublisher.from_url(url, account=ACCOUNT, health_ttl_ms=5_000, closed_ttl_s=60,
                                  events_maxlen=100, veto_max_age_ms=5_000, socket_timeout_s=5.0)
    views = [make_view(KEY, state=state, version=version, verified_ms=1_700_000_000_000 + version)
             for version, state in facts]
    await take_lead(pub)
    try:
        if concurrent:
            await asyncio.gather(*(pub.publish(v) for v in views))
        else:
            for view in views:
                await pub.publish(view)
    finally:
        await pub.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(facts=FACTS, concurrent=st.booleans())
def test_newest_version_wins_in_any_order(redis_url: str, facts: list[tuple[int, PositionState]],
                                          concurrent: bool) -> None:
    plain = redis.Redis.from_url(redis_url, decode_responses=True)
    plain.delete(AccountKeys(ACCOUNT).position(KEY))
    asyncio.run(_publish_all(redis_url, facts, concurrent))
    stored = plain.hgetall(AccountKeys(ACCOUNT).position(KEY))
    plain.close()
    newest = max(version for version, _ in facts)
    assert stored["version"] == str(newest)
    # the stored state is one of the facts carrying the newest version (equal versions: first wins)
    assert stored["state"] in {state.value for version, state in facts if version == newest}
    if not concurrent:
        first = next(state for version, state in facts if version == newest)
        assert stored["state"] == first.value
