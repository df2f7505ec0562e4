"""Several accounts of one process on one user-data connection (issue 14 item 2,
binance/shared_stream.py), with the real daemon (``python -m watchdog run``), a real
redis-server and the simulator over real sockets (the rig of test_accounts.py).

Checks: one connection carries every account's listen key; each account is told only its own
positions; one account's expired key costs only that account a reconnect; losing the shared
connection makes every account resync, and a position closed meanwhile is told closed."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import redis.asyncio

from poswatch.keys import AccountKeys
from tests.integration.test_accounts import accounts_of, fill, started
from tests.integration.test_ha import sync
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


def private_connections(sim: Simulator) -> list[tuple[str, int]]:
    """(path, keys) of each open private connection, as the simulator sees them."""
    return sorted((c.path, len(c.subscriptions)) for c in sim.venue.hub.connections
                  if c.subscriptions)


async def test_one_process_one_connection_for_every_account(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    accounts = accounts_of(sim, 3)
    async with AsyncExitStack() as stack:
        setup = await started(stack, sim, redis_url, tmp_path, accounts)
        (only,), bots, names = setup.group, setup.bots, setup.names
        for name in names:
            await eventually(lambda n=name: bots[n].check("BASUSDT"),
                             lambda v: v.reason == "no_position", timeout_s=60,
                             what=f"{name} published")

        async def connections() -> list[tuple[str, int]]:
            return private_connections(sim)

        await eventually(connections, lambda c: c == [("/private/stream", 3)], timeout_s=30,
                         what="one connection carrying the three keys")
        lost = sync(lambda: only.text().count("user stream lost"))
        assert await lost() == 0

        # Each account is told its own position, and only its own.
        fill(sim, accounts["acct1"][0], "BASUSDT", "BUY", "1216")
        await eventually(lambda: bots["acct1"].check("BASUSDT"), lambda v: v.allowed,
                         timeout_s=30, what="acct1's position allowed")
        for name in ("acct0", "acct2"):
            assert (await bots[name].check("BASUSDT")).reason == "no_position", name

        # acct2's key expires: acct2 alone reconnects, on a connection of its own.
        sim.exchange.force_expire_listen_key(accounts["acct2"][0])
        sim.venue.flush()
        await eventually(connections, lambda c: c == [("/private/stream", 3), ("/private/ws", 1)],
                         timeout_s=30, what="acct2 on a connection of its own")
        await eventually(lost, lambda n: n >= 1, timeout_s=30, what="acct2's stream lost")
        assert await lost() == 1  # nobody else's
        fill(sim, accounts["acct2"][0], "ETHUSDT", "BUY", "2")
        await eventually(lambda: bots["acct2"].check("ETHUSDT"), lambda v: v.allowed,
                         timeout_s=30, what="acct2 delivers again")

        # The connections drop: every account resyncs; a closure meanwhile is told.
        sim.set_faults(stream="disconnect")
        fill(sim, accounts["acct1"][0], "BASUSDT", "SELL", "1216")
        await eventually(lambda: bots["acct1"].check("BASUSDT"),
                         lambda v: v.reason == "position_closed", timeout_s=30,
                         what="the closure told after the loss")
        await eventually(lost, lambda n: n >= 4, timeout_s=30, what="every account lost it")
        await eventually(connections, lambda c: c == [("/private/stream", 3)], timeout_s=30,
                         what="all three back on one connection")
        for name in names:
            await eventually(lambda n=name: rclient.hget(AccountKeys(n).health, "stream_state"),
                             lambda s: s in (b"live", "live"), timeout_s=30,
                             what=f"{name}'s stream live again")
        assert only.process.returncode is None, only.text()[-3000:]
