"""``position-watchdog orphans``: one fresh REST read through the real books and decide()."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.support.reaper_rig import Bot
from watchdog.config import Credentials, load_config
from watchdog.core.model import Symbol
from watchdog.core.reaper import Assessment, Why
from watchdog.ops.orphans import MAX_WAIT_MS, collect, render_text
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, sim: Simulator, redis_url: str, *, grace_ms: int = 2000) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[binance]
rest_url = "{sim.rest_url}"
ws_url = "{sim.ws_url}"

[redis]
url = "{redis_url}"
account = "cli"

[reaper]
grace_ms = {grace_ms}
""")
    return path


async def place_world(sim: Simulator) -> dict[str, int]:
    """BAS open with its stop; ETH flat with a leftover stop; BTC flat with an entry stop."""
    import httpx

    async with httpx.AsyncClient(timeout=5.0) as http:
        bot = Bot(sim, http, None)  # type: ignore[arg-type]
        sim.fill("BASUSDT", "BUY", "1216")
        bas = await bot.place_stop("BASUSDT", "SELL", "0.00800000", qty="1216")
        eth = await bot.place_stop("ETHUSDT", "SELL", "2900.00", qty="1")
        btc = await bot.place_stop("BTCUSDT", "BUY", "95000.00", qty="0.01", reduce_only=False)
    return {"bas": bas, "eth": eth, "btc": btc}


async def test_listing_shows_candidates_and_why_the_others_stay(
        sim: Simulator, redis_url: str, tmp_path: Path) -> None:
    ids = await place_world(sim)
    # A grace longer than the listing waits out (MAX_WAIT_MS): shown with the time left.
    config = load_config(write_config(tmp_path, sim, redis_url, grace_ms=60_000))
    report = await collect(config, Credentials(sim.api_key, sim.api_secret),
                           symbols=[Symbol("ETHUSDT"), Symbol("BTCUSDT")])
    why: dict[int, Assessment] = {a.order.order_id: a for a in report.decision.assessments}
    assert why[ids["bas"]].why is Why.POSITION_OPEN
    assert why[ids["btc"]].why is Why.ENTRY_ORDER
    eth = why[ids["eth"]]
    assert eth.why is Why.NOT_FLAT_LONG_ENOUGH
    assert eth.remaining_ms is not None
    assert MAX_WAIT_MS < eth.remaining_ms <= 62_000  # grace + max_rest_lag_ms (2 s) at most
    assert [a.order.order_id for a in report.candidates] == [ids["eth"]]
    assert report.leases == "ok"
    assert sim.exchange.accounts[sim.api_key].algos[ids["eth"]].is_open  # nothing cancelled
    text = render_text(report)
    assert "CANDIDATE" in text
    assert "entry_order" in text


async def test_cli_json_exit_0(sim: Simulator, redis_url: str, tmp_path: Path) -> None:
    ids = await place_world(sim)
    path = write_config(tmp_path, sim, redis_url)
    env = {**os.environ, "BINANCE_API_KEY": sim.api_key, "BINANCE_API_SECRET": sim.api_secret}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", "orphans", "--json", "--config", str(path),
        "--symbol", "ethusdt", "--symbol", "BTCUSDT",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out.decode().strip().splitlines()[-1])
    assert [c["order_id"] for c in doc["candidates"]] == [ids["eth"]]
    assert {k["order_id"]: k["why"] for k in doc["kept"]} == {
        ids["bas"]: "position_open", ids["btc"]: "entry_order"}
    assert sim.api_secret not in out.decode() + err.decode()


async def test_cli_bad_config_exit_78(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[reaper]\ngrace_ms = -5\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", "orphans", "--config", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"})
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 78
    assert "grace_ms" in err.decode()


async def test_without_symbol_it_finds_what_the_daemons_sweep_finds(
        sim: Simulator, redis_url: str, tmp_path: Path) -> None:
    """No ``--symbol``: the reduce-only stop on flat ETHUSDT (a symbol positionRisk does not
    list) is found by the all-symbols read the daemon's sweep makes, and its grace is judged on
    the exchange's clock: the listing waits it out and reads again, as the daemon does, instead
    of answering ``not_flat_long_enough`` on every run."""
    ids = await place_world(sim)
    config = load_config(write_config(tmp_path, sim, redis_url))
    report = await collect(config, Credentials(sim.api_key, sim.api_secret))
    why: dict[int, Assessment] = {a.order.order_id: a for a in report.decision.assessments}
    assert why[ids["eth"]].why is Why.ORPHAN, why[ids["eth"]]
    assert why[ids["bas"]].why is Why.POSITION_OPEN
    assert why[ids["btc"]].why is Why.ENTRY_ORDER
    assert "ETHUSDT" in report.symbols
    assert sim.exchange.accounts[sim.api_key].algos[ids["eth"]].is_open  # nothing cancelled


async def test_cli_exit_77_when_binance_rejects_the_key(sim: Simulator, redis_url: str,
                                                        tmp_path: Path) -> None:
    path = write_config(tmp_path, sim, redis_url)
    env = {**os.environ, "BINANCE_API_KEY": sim.api_key, "BINANCE_API_SECRET": "not-the-secret"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", "orphans", "--config", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 77, err.decode()
    assert "-1022" in err.decode().splitlines()[-1]
