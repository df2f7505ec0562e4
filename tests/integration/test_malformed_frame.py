"""docs/RULES.md rule 3 ("nothing lost") through the real daemon: a malformed user-stream frame may
be the one that carried a position change. Dropping it with a warning is not enough: the
daemon must ask REST at once instead of waiting for the next scheduled poll. Simulator over
real sockets (the corrupt frame is queued on the simulator's own live connection), real Redis.
The scheduled poll is set to 60 s so that only the reaction to the frame can find the closure
within the deadline."""

from __future__ import annotations

import asyncio
import json

import redis

from tests.integration.test_daemon import BASUSDT, KEYS, config_table, start_daemon
from tests.support.waiting import eventually
from watchdog.sim import Simulator

POSITION_EVENTS = ["ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE", "TRADE_LITE"]


def corrupt_account_update(sim: Simulator) -> str:
    """An ACCOUNT_UPDATE for the closure whose position row has ``pa`` null: it fails parsing."""
    now_ms = sim.venue.now_ms()
    return json.dumps({"e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms, "a": {
        "m": "ORDER", "B": [],
        "P": [{"s": "BASUSDT", "pa": None, "ep": "0", "cr": "0", "up": "0", "mt": "cross",
               "iw": "0", "ps": "BOTH"}]}})


async def test_malformed_frame_asks_rest_at_once(sim: Simulator, redis_url: str,
                                                 rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    table = config_table(sim, redis_url)
    table["binance"] |= {"poll_interval_s": 60.0, "max_silence_s": 600.0,
                         "orders_poll_interval_s": 60.0}
    table["core"] = {"max_age_ms": 300_000}
    daemon, stop = start_daemon(sim, table)
    try:
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                         lambda v: v == "open", timeout_s=20, what="published open")
        await eventually(lambda: rclient.hget(KEYS.health, "stream_state"),
                         lambda v: v == "live", timeout_s=20, what="stream live")
        sim.set_faults(drop_events=POSITION_EVENTS)  # the closure's good frames never arrive
        sim.fill("BASUSDT", "SELL", "1216")
        [conn] = [c for c in sim.venue.hub.connections if c.subscriptions]
        conn.queue.put_nowait((0.0, "ACCOUNT_UPDATE", corrupt_account_update(sim)))
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                         lambda v: v == "closed", timeout_s=20,
                         what="closure found by a REST read the malformed frame asked for")
        assert not daemon.done(), "a malformed frame must not end the daemon"
    finally:
        stop.set()
        assert await asyncio.wait_for(daemon, timeout=20) == 0
