"""The shared connection's routing (binance/shared_stream.py rules 2 and 4), without sockets:
which lane gets which frame, and what a lane leaving does."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.binance.shared_lane import Lane, SharedConnection
from watchdog.binance.shared_stream import SharedUserStreams
from watchdog.clock import ManualClock


class FakeSocket:
    close_code: int | None = None
    aborted = 0

    class _Transport:
        def __init__(self, owner: FakeSocket) -> None:
            self.owner = owner

        def abort(self) -> None:
            self.owner.aborted += 1

    def __init__(self) -> None:
        self.transport = self._Transport(self)


def connection(*accounts: tuple[str, str], wrapped: bool = True) -> tuple[SharedConnection, list[Lane]]:
    conn = SharedConnection(1, cast(Any, FakeSocket()), wrapped=wrapped,
                   keys=frozenset(key for _, key in accounts))
    lanes = [Lane(conn, account, key) for account, key in accounts]
    for lane in lanes:
        conn.lanes.setdefault(lane.key, []).append(lane)
        conn.accounts.add(lane.account)
    return conn, lanes


def queued(lane: Lane) -> list[Any]:
    items = []
    while not lane._queue.empty():
        items.append(lane._queue.get_nowait())
    return items


def wrap(key: str, event: dict[str, Any]) -> str:
    return json.dumps({"stream": key, "data": event})


async def test_rule_2_each_lane_gets_its_own_frames_unwrapped() -> None:
    streams = SharedUserStreams("ws://x", ManualClock())
    conn, (a, b) = connection(("a", "K1"), ("b", "K2"))
    streams._dispatch(conn, wrap("K1", {"e": "ACCOUNT_UPDATE", "E": 1}))
    streams._dispatch(conn, wrap("K2", {"e": "ORDER_TRADE_UPDATE", "E": 2}))
    streams._dispatch(conn, wrap("K1", {"e": "listenKeyExpired", "E": 3}))
    assert [json.loads(f)["E"] for f in queued(a)] == [1, 3]
    assert [json.loads(f)["e"] for f in queued(b)] == ["ORDER_TRADE_UPDATE"]


async def test_rule_2_a_frame_of_no_account_goes_to_every_lane() -> None:
    streams = SharedUserStreams("ws://x", ManualClock())
    conn, lanes = connection(("a", "K1"), ("b", "K2"))
    for frame in ('{"e": "ACCOUNT_UPDATE"}', "not json", wrap("K9", {"e": "X"})):
        streams._dispatch(conn, frame)
    assert all(queued(lane) == ['{"e": "ACCOUNT_UPDATE"}', "not json", wrap("K9", {"e": "X"})]
               for lane in lanes)
    assert streams.stats.unattributed == 3


async def test_rule_4_a_lane_that_left_gets_nothing_the_others_keep_theirs() -> None:
    streams = SharedUserStreams("ws://x", ManualClock())
    conn, (a, b) = connection(("a", "K1"), ("b", "K2"))
    a.leave()
    streams._dispatch(conn, wrap("K1", {"e": "ACCOUNT_UPDATE", "E": 1}))
    streams._dispatch(conn, wrap("K2", {"e": "ACCOUNT_UPDATE", "E": 2}))
    assert [type(x).__name__ for x in queued(a)] == ["ConnectionClosedOK"]  # its reader ends
    assert [json.loads(f)["E"] for f in queued(b)] == [2]
    assert streams.stats.unclaimed == 1
    assert conn.accounts == {"b"}
    assert cast(FakeSocket, conn.ws).aborted == 0  # b still reads it


async def test_rule_4_the_last_lane_leaving_closes_the_connection() -> None:
    streams = SharedUserStreams("ws://x", ManualClock())
    conn, (a, b) = connection(("a", "K1"), ("b", "K2"))
    conn.on_empty = streams._empty
    streams._connections.add(conn)
    a.leave()
    b.transport.abort()
    assert cast(FakeSocket, conn.ws).aborted == 1
    assert streams.connections == 0


async def test_one_key_connection_frames_go_through_untouched() -> None:
    streams = SharedUserStreams("ws://x", ManualClock())
    conn, (a,) = connection(("a", "K1"), wrapped=False)
    streams._dispatch(conn, b'{"e":"ACCOUNT_UPDATE","E":1}')
    assert queued(a) == [b'{"e":"ACCOUNT_UPDATE","E":1}']


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10**6)), max_size=60),
       st.sets(st.integers(0, 3), max_size=3))
def test_rule_2_no_account_ever_gets_another_accounts_frame(
        frames: list[tuple[int, int]], leaving: set[int]) -> None:
    """Frames for four keys (and a fifth nobody has), some accounts leaving: each lane gets
    exactly its own key's frames, in order; a frame of no account reaches every lane left."""
    async def run() -> None:
        streams = SharedUserStreams("ws://x", ManualClock())
        conn, lanes = connection(*((f"a{i}", f"K{i}") for i in range(4)))
        for i in leaving:
            lanes[i].leave()
            queued(lanes[i])
        for key, n in frames:
            streams._dispatch(conn, wrap(f"K{key}", {"e": "ACCOUNT_UPDATE", "E": n}))
        for i, lane in enumerate(lanes):
            got = queued(lane)
            if i in leaving:
                assert got == []
                continue
            seen = [json.loads(f)["data"]["E"] if "stream" in json.loads(f) else
                    json.loads(f)["E"] for f in got]
            assert seen == [n for k, n in frames if k in (i, 4)], i
            for f, (k, _) in zip(got, [x for x in frames if x[0] in (i, 4)], strict=True):
                assert ("stream" in json.loads(f)) == (k == 4)  # no account's: as received

    asyncio.run(run())
