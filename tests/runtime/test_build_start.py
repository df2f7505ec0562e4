"""``Pipeline.start`` and the start's reads (runtime/build.py rule 5), at the defaults, on the
simulator over real sockets: the start reads positions once, the stream's post-connect read,
which is also the credential check; without a stream the poller's first read comes an interval
later. Refused credentials at startup (exit 77) are tests/integration/test_daemon_failure.py."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.pipeline import running
from tests.support.waiting import eventually
from watchdog.clock import SystemClock
from watchdog.config import BinanceConfig, Config, Credentials, ReaperConfig, RedisConfig
from watchdog.core.events import Event, SnapshotRequested, StreamConnected
from watchdog.runtime.build import Endpoints, Pipeline, build
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

_POSITIONS = "/fapi/v3/positionRisk"


@dataclass
class Started:
    pipeline: Pipeline
    events: list[Event]
    positions_at: list[float] = field(default_factory=list)  # loop time of each positionRisk sent

    async def reads(self) -> int:
        return len(self.positions_at)


def _config(sim: Simulator, redis_url: str, ws_url: str | None = None) -> Config:
    """The defaults (poll_interval_s 0.9 s, weight share 15 %), on the simulator; the reaper off."""
    return Config(binance=BinanceConfig(rest_url=sim.rest_url, ws_url=ws_url or sim.ws_url),
                  redis=RedisConfig(url=redis_url, account="start"),
                  reaper=ReaperConfig(enabled=False))


@contextlib.asynccontextmanager
async def _started(config: Config, sim: Simulator) -> AsyncIterator[Started]:
    loop = asyncio.get_running_loop()
    seen = Started(None, [])  # type: ignore[arg-type]

    async def on_request(request: httpx.Request) -> None:
        if request.url.path == _POSITIONS:
            seen.positions_at.append(loop.time())

    async with httpx.AsyncClient(base_url=config.binance.rest_url,
                                 event_hooks={"request": [on_request]}) as http, \
            build(config, Credentials(sim.api_key, sim.api_secret), SystemClock(),
                  Endpoints(http=http, observers=(seen.events.append,))) as pipeline:
        seen.pipeline = pipeline
        async with running(pipeline):
            yield seen


async def test_the_start_reads_positions_once_after_the_stream_connects(
        sim: Simulator, redis_url: str) -> None:
    """Rule 5: one positions read at the start, requested after the stream's connect; the
    poller's first read is served by it. Before: a discarded credential check, the poller's
    first poll and the stream's post-connect read, 15 weight within 35 ms."""
    sim.fill("BTCUSDT", "BUY", "0.01")
    async with _started(_config(sim, redis_url), sim) as seen:
        await eventually(seen.reads, lambda n: n >= 2, timeout_s=15,
                         what="the start's read and the first scheduled one")
        first_two = seen.positions_at[:2]
        requested = [e for e in seen.events if isinstance(e, SnapshotRequested)]
        connected = [i for i, e in enumerate(seen.events) if isinstance(e, StreamConnected)]
    assert connected, "the stream connected"
    # The first positions read of the run is the stream's post-connect read (rule 5)...
    assert seen.events.index(requested[0]) > connected[0]
    # ... and the next one is the poller's, an interval later (0.9 s; loaded machines are
    # slower, never faster: anything under half an interval is a second start read).
    assert first_two[1] - first_two[0] >= 0.45, first_two


async def test_without_a_stream_the_poller_reads_an_interval_after_the_start(
        sim: Simulator, redis_url: str) -> None:
    """Rule 5: the poller's first read waits for the stream's only up to ``poll_interval_s``:
    with the WebSocket unreachable the start still gets its snapshot from the poller."""
    with socket_nobody_listens() as dead_ws:
        config = _config(sim, redis_url, ws_url=dead_ws)
        async with _started(config, sim) as seen:
            await eventually(seen.reads, lambda n: n >= 1, timeout_s=15,
                             what="the poller's first read")
            assert not any(isinstance(e, StreamConnected) for e in seen.events)


@contextlib.contextmanager
def socket_nobody_listens() -> Iterator[str]:
    """A ws:// URL on a loopback port that refuses connections."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now: connects are refused at once
    yield f"ws://127.0.0.1:{port}"
