"""Red-team rule 1 end to end: a bracket (a breakout entry plus its closePosition stop, placed
while flat) whose entry fills while the stream sends no ACCOUNT_UPDATE (the incident) and REST
lags (less than the grace). The stop is the new position's only protection: the reaper must
never cancel it. Simulator over real sockets, real Redis, the real adapters and core."""

from __future__ import annotations

import pytest

from tests.integration.test_reaper import ETH, Rig, flat_by_rest, kept_for, price, verdict
from watchdog.core.model import PositionKey, PositionSide
from watchdog.core.reaper import Why
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_bracket_stop_survives_its_entry_filling_unseen_under_rest_lag(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    key = PositionKey(ETH, PositionSide.BOTH)
    async with reaper_rig(sim, redis_url, grace_ms=1000) as rig:
        await flat_by_rest(rig, key)
        entry = await rig.bot.place_stop(ETH, "BUY", price(sim, ETH, "1.02"), qty="1",
                                         reduce_only=False, client_id="bot-entry")
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.90"),
                                        close_position=True, client_id="bot-sl")
        await kept_for(rig, stop, Why.ENTRY_PENDING, 1.5)  # older than the grace by now
        sim.set_faults(drop_events=["ACCOUNT_UPDATE"], rest_lag_ms=600)
        sim.set_mark_price(ETH, price(sim, ETH, "1.05"))  # the entry triggers and fills
        await rig.until("position open on the exchange", lambda: sim.exchange.accounts[
            sim.api_key].position(ETH, "BOTH").amount != 0)
        await rig.until("entry gone", lambda: not rig.algo_open(entry))
        await kept_for(rig, stop, Why.POSITION_OPEN, 1.0)
        assert verdict(rig, stop) is Why.POSITION_OPEN
        assert await rig.events_of_kind("orphan_removed") == []
        assert [r for r in rig.reaper.results if r.cancel.order_id == stop
                and r.outcome.value in ("removed", "already_gone")] == []
