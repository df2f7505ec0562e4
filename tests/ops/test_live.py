"""The live views' pure parts: frames drawn in place, event lines with UTC times, the watch
loop on a manual clock, and the follow loop over a real redis-server (outage included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import RedisServer
from watchdog.clock import ManualClock
from watchdog.ops.live import (
    CLEAR,
    ERASE_BELOW,
    ERASE_LINE,
    HIDE_CURSOR,
    HOME,
    SHOW_CURSOR,
    event_json,
    event_line,
    follow_events,
    recent_events,
    screen,
    utc,
    watch,
)
from watchdog.store.keys import AccountKeys

KEYS = AccountKeys("live")


def test_utc_shows_milliseconds() -> None:
    assert utc(1796591931895) == "2026-12-06 21:18:51.895 UTC"
    assert utc(0) == "1970-01-01 00:00:00.000 UTC"


def test_a_frame_redraws_in_place_and_erases_what_the_previous_one_left() -> None:
    first = screen("a\nbb", first=True)
    assert first == f"{CLEAR}{HOME}a{ERASE_LINE}\nbb{ERASE_LINE}\n{ERASE_BELOW}"
    later = screen("a", first=False)
    assert later.startswith(HOME)
    assert CLEAR not in later
    assert later.endswith(ERASE_BELOW)


class Sleeps(list[float]):
    """The loop's sleeps, recorded; each lets that much time pass on the manual clock."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 6))
        self.clock.advance(seconds)


def manual() -> tuple[ManualClock, Sleeps, list[str]]:
    clock = ManualClock(now_s=100.0)
    return clock, Sleeps(clock), []


def test_watch_draws_on_a_fixed_beat_and_returns_the_last_code() -> None:
    clock, sleep, out = manual()
    codes = iter([0, 1, 2])

    def render() -> tuple[str, int]:
        clock.advance(0.3)  # a slow read: the beat does not drift
        return "frame", next(codes)

    code = watch(render, write=out.append, flush=lambda: None, clock=clock.monotonic, sleep=sleep, frames=3)
    assert code == 2
    assert sleep == [0.7, 0.7]
    text = "".join(out)
    assert text.startswith(HIDE_CURSOR + CLEAR + HOME)
    assert text.endswith(SHOW_CURSOR + "\n")
    assert text.count(HOME) == 3
    assert text.count(CLEAR) == 1


def test_ctrl_c_ends_the_watch_with_the_cursor_back() -> None:
    clock, sleep, out = manual()
    seen = []

    def render() -> tuple[str, int]:
        if seen:
            raise KeyboardInterrupt
        seen.append(1)
        return "x", 1

    assert watch(render, write=out.append, flush=lambda: None, clock=clock.monotonic, sleep=sleep) == 1
    assert "".join(out).endswith(SHOW_CURSOR + "\n")


def test_json_watch_writes_one_line_a_beat_without_ansi() -> None:
    clock, sleep, out = manual()
    watch(lambda: ('{"verdict":"down"}', 2), ansi=False, write=out.append, flush=lambda: None,
          clock=clock.monotonic, sleep=sleep, frames=2)
    assert out == ['{"verdict":"down"}\n', '{"verdict":"down"}\n']


def test_event_lines_carry_the_utc_time_kind_and_fields() -> None:
    fields = {"kind": "position_closed", "at_ms": "1796591931895", "position": "BASUSDT:BOTH"}
    assert event_line("1796591931895-0", fields) == (
        "2026-12-06 21:18:51.895 UTC  position_closed        position=BASUSDT:BOTH")
    # No at_ms: the stream id's time.
    assert event_line("1796591931000-3", {"kind": "alert"}).startswith("2026-12-06 21:18:51.000 UTC  alert")
    assert event_json("1-0", fields) == (
        '{"id":"1-0","at":"2026-12-06 21:18:51.895 UTC","kind":"position_closed",'
        '"at_ms":"1796591931895","position":"BASUSDT:BOTH"}')


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=3, socket_connect_timeout=1)
    yield c
    c.close()


def test_recent_then_follow_resumes_after_the_last_event_across_an_outage(
        client: redis.Redis, redis_server: RedisServer) -> None:
    ids = [client.xadd(KEYS.events, {"kind": f"k{n}", "at_ms": str(1000 + n)}) for n in range(3)]
    shown = recent_events(client, KEYS, 2)
    assert [(i, f["kind"]) for i, f in shown] == [(ids[1], "k1"), (ids[2], "k2")]

    outages: list[Exception | None] = []

    def sleep(_seconds: float) -> None:
        """The outage ends while the follower waits: Redis is back (empty: nothing persisted)
        and the watchdog writes its next event."""
        if redis_server.process is None:
            redis_server.start()
            with redis.Redis.from_url(redis_server.url, decode_responses=True) as writer:
                writer.xadd(KEYS.events, {"kind": "k4"})

    feed = follow_events(client, KEYS, shown[-1][0], block_ms=100, on_outage=outages.append, sleep=sleep)
    client.xadd(KEYS.events, {"kind": "k3"})
    assert next(feed)[1]["kind"] == "k3"
    redis_server.stop()
    assert next(feed)[1]["kind"] == "k4"
    assert [type(o).__name__ for o in outages] == ["ConnectionError", "NoneType"]
