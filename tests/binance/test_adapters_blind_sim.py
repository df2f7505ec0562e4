"""A stream that stays muted, against the simulator: REST keeps detecting every change, the
stream is found blind each time, but replaced only once per ``blind_reconnect_interval_s``."""

from __future__ import annotations

import pytest

from tests.binance.test_adapters_sim import close_position, lost_reasons, open_position, watching
from watchdog.core.model import PositionState
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_a_stream_that_stays_muted_is_replaced_once_per_interval(
        sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        sim.set_faults(stream="mute")  # for the whole test, across reconnects
        for cycle in range(2):
            await open_position(w)  # seen by REST alone
            # cycle 0: replaced at once; cycle 1: the replacement waits for the interval
            await w.until(lambda w, n=cycle + 1: w.stream.stats.blind_reconnects
                          + w.stream.stats.blind_deferred >= n, "open found blind")
            close_position(w)
            await w.until_state(PositionState.CLOSED, "closed seen through REST", timeout_s=20)
        blind = [a for a in w.alerts if a.code == "stream_blind"]
        assert len(blind) >= 2  # every unreported change is reported...
        assert w.stream.stats.blind_reconnects == 1  # ...but the connection is replaced once
        assert w.stream.stats.blind_deferred == 1  # one replacement waits for the interval
        assert sum(r.startswith("blind") for r in lost_reasons(w)) == 1
