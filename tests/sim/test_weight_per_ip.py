"""The simulator's IP weight, per address (SimSettings.weight_key, docs/SIMULATOR.md): Binance
meters each client IP on its own; two "hosts" on one machine are two loopback addresses. Real
sockets, httpx clients."""

from __future__ import annotations

import httpx
import pytest

from watchdog.sim import run_simulator

pytestmark = pytest.mark.integration

HOST2 = "127.0.0.2"  # Linux routes all of 127.0.0.0/8 on lo


async def used(client: httpx.AsyncClient, url: str) -> tuple[int, int]:
    """(status, X-MBX-USED-WEIGHT-1M) of one weight-1 call."""
    answer = await client.get(f"{url}/fapi/v1/time")
    return answer.status_code, int(answer.headers["X-MBX-USED-WEIGHT-1M"])


async def test_one_meter_for_every_client_by_default() -> None:
    async with run_simulator(weight_limit=100) as sim, httpx.AsyncClient() as client:
        other = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=HOST2))
        async with other:
            assert await used(client, sim.rest_url) == (200, 1)
            assert await used(other, sim.rest_url) == (200, 2)  # as always: one IP


async def test_peer_mode_meters_each_client_ip_on_its_own() -> None:
    async with run_simulator(weight_limit=3, weight_key="peer") as sim, \
            httpx.AsyncClient() as client:
        other = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=HOST2))
        async with other:
            for n in (1, 2, 3):
                assert await used(client, sim.rest_url) == (200, n)
            assert (await client.get(f"{sim.rest_url}/fapi/v1/time")).status_code == 429
            assert await used(other, sim.rest_url) == (200, 1)  # its own minute
            state = (await client.get(f"{sim.control_url}/state")).json()
            assert state["weight_used_1m_by_ip"] == {"127.0.0.1": 3, HOST2: 1}


async def test_dialled_mode_meters_by_the_address_the_client_reached() -> None:
    """On loopback the kernel gives a client the source 127.0.0.1 whatever 127.x it dials
    (the route's src), so "dialled" is how a bench stands two hosts in on one machine."""
    charged: list[tuple[str, str, int]] = []
    async with run_simulator(weight_limit=100, weight_key="dialled",
                             extra_hosts=(HOST2,)) as sim, httpx.AsyncClient() as client:
        sim.venue.on_charge = lambda ip, path, key, weight: charged.append((ip, path, weight))
        second = sim.rest_url.replace("127.0.0.1", HOST2)
        assert await used(client, sim.rest_url) == (200, 1)
        assert await used(client, sim.rest_url) == (200, 2)
        assert await used(client, second) == (200, 1)
        assert charged == [("127.0.0.1", "GET /fapi/v1/time", 1)] * 2 + [
            (HOST2, "GET /fapi/v1/time", 1)]
