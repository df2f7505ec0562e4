"""An event-loop stall is not silent (runtime/stalls.py): the daemon process (``position-watchdog
run``, against the simulator and a real redis-server) is stopped with SIGSTOP for a while, as
if its loop were blocked or the machine had not run it, then continued. What an operator sees is
asserted: one WARNING on stderr naming the lateness and the timers, and the stall counted in
the Prometheus metrics. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from tests.integration.test_daemon import KEYS, cli_process, config_table, write_toml
from tests.integration.test_daemon_stop import read_until
from tests.support.waiting import eventually
from watchdog.demo.processes import free_port
from watchdog.runtime.stalls import STALL_S
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

# How long the process is stopped: the stimulus, not a synchronisation. The test config's
# heartbeat beats every 0.2 s, so every stop this long shows as a wake at least 1.3 s late.
_STOPPED_S = 1.5
assert _STOPPED_S - 0.2 > STALL_S


async def test_a_stopped_process_reports_one_stall_with_a_warning_and_a_metric(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    listen = f"127.0.0.1:{free_port()}"
    table = config_table(sim, redis_url)
    table["metrics"] = {"listen": listen}
    config = write_toml(tmp_path / "config.toml", table)
    async with cli_process("run", "--config", str(config), key=sim.api_key,
                           secret=sim.api_secret) as process, httpx.AsyncClient(timeout=5) as http:
        await eventually(lambda: rclient.hget(KEYS.health, "ready"), lambda v: v == "true",
                         timeout_s=60, what="daemon ready")

        async def scrape() -> str:
            try:
                return (await http.get(f"http://{listen}/metrics")).text
            except httpx.TransportError:
                return ""

        before = await eventually(scrape, lambda t: "position_watchdog_loop_stalls_total" in t,
                                  timeout_s=30, what="the stall metrics exported")
        assert _value(before, "position_watchdog_loop_stalls_total") == 0
        process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(_STOPPED_S)  # the stall itself (see _STOPPED_S)
        finally:
            process.send_signal(signal.SIGCONT)
        lines = await read_until(process, "event loop stalled", timeout_s=30)
        warning = lines[-1]
        assert "WARNING" in warning, warning
        late = re.search(r"woke (\d+\.\d+)s late", warning)
        assert late is not None, warning
        assert float(late.group(1)) >= STALL_S, warning
        assert "cpu_user_s=" in warning, warning
        after = await eventually(scrape, lambda t: _value(t, "position_watchdog_loop_stalls_total") >= 1,
                                 timeout_s=30, what="the stall counted")
        assert _value(after, "position_watchdog_loop_stalls_total") == 1  # one stall, once
        assert _value(after, "position_watchdog_loop_lateness_max_seconds") >= STALL_S
        assert _value(after, "position_watchdog_loop_lateness_seconds_count") > 0
        assert process.returncode is None  # a stall degrades nothing by itself: still running


def _value(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return -1.0 if found is None else float(found.group(1))
