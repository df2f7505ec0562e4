"""docs/RULES.md rule 4: secrets never leave. A real daemon (``python -m watchdog --log-level DEBUG
run``) against the simulator over real sockets and a real redis-server: a position, a stop, the
closure, the orphan removed (a signed DELETE), a forced listen-key expiry (a new key), REST 5xx
bursts. Then the full debug log, every Redis key and value, and ``status --json`` are grepped for
the API key, the secret, every listen key issued and anything shaped like a signature."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import redis

from tests.integration.test_daemon import (
    ACCOUNT,
    BASUSDT,
    KEYS,
    ROOT,
    config_table,
    status_of,
    write_toml,
)
from tests.support.reaper_rig import Bot
from tests.support.waiting import eventually
from watchdog.sim import Simulator

API_KEY = "RedTeamApiKey" + "k3y" * 20
API_SECRET = "RedTeamSecret" + "s3cr3t" * 10
HEX64 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


def dump_redis(url: str) -> str:
    """Every key and every value of the database, as text (names included)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    parts: list[str] = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            parts.append(f"{kind} {key}")
            if kind == "string":
                parts.append(str(client.get(key)))
            elif kind == "hash":
                parts.append(repr(client.hgetall(key)))
            elif kind == "set":
                parts.append(repr(client.smembers(key)))
            elif kind == "zset":
                parts.append(repr(client.zrange(key, 0, -1, withscores=True)))
            elif kind == "list":
                parts.append(repr(client.lrange(key, 0, -1)))
            elif kind == "stream":
                parts.append(repr(client.xrange(key)))
            else:
                parts.append(f"<unexpected type {kind}>")
    finally:
        client.close()
    return "\n".join(parts)


def leaks(text: str, listen_keys: set[str]) -> list[str]:
    found = [name for name, secret in (("api key", API_KEY), ("api secret", API_SECRET))
             if secret in text]
    found += [f"listen key {k[:6]}…" for k in listen_keys if k in text]
    found += [f"hex64 {m[:6]}…" for m in HEX64.findall(text)]
    return found


async def test_no_secret_in_debug_log_redis_or_status(
        sim_factory: Callable[..., AbstractAsyncContextManager[Simulator]], redis_url: str,
        tmp_path: Path) -> None:
    async with sim_factory(api_key=API_KEY, api_secret=API_SECRET, ping_interval_s=1.0) as sim:
        table = config_table(sim, redis_url)
        table["reaper"] = {"grace_ms": 300}
        config = write_toml(tmp_path / "config.toml", table)
        log_path = tmp_path / "daemon.log"
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY")}
        env |= {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": API_SECRET,
                "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'client'}"}
        listen_keys: set[str] = set()
        account = sim.exchange.accounts[API_KEY]

        def note_listen_key() -> str | None:
            if account.listen_key is not None:
                listen_keys.add(account.listen_key)
            return account.listen_key

        rclient = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "watchdog", "--log-level", "DEBUG", "run", "--config",
                str(config), cwd=ROOT, env=env, stdout=log_file, stderr=log_file)
            try:
                await eventually(lambda: rclient.hget(KEYS.health, "ready"),
                                 lambda v: v == "true", timeout_s=30, what="daemon ready")
                first_key = note_listen_key()
                assert first_key is not None
                async with httpx.AsyncClient(timeout=5.0) as http:
                    bot = Bot(sim, http, None)  # type: ignore[arg-type]
                    sim.fill("BASUSDT", "BUY", "1216")
                    await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                                     lambda v: v == "open", timeout_s=20, what="open")
                    stop = await bot.place_stop("BASUSDT", "SELL", "0.00100000", qty="1216")
                    sim.fill("BASUSDT", "SELL", "1216")  # closed by hand: the stop is an orphan
                    await eventually(lambda: rclient.xrange(KEYS.events),
                                     lambda es: any(f.get("kind") == "orphan_removed"
                                                    and f.get("order_id") == str(stop)
                                                    for _, f in es),
                                     timeout_s=30, what="orphan removed")
                sim.set_faults(rest_errors={"status": 502, "count": 3})
                sim.exchange.force_expire_listen_key(API_KEY)
                await eventually(lambda: asyncio.sleep(0, note_listen_key()),
                                 lambda k: k is not None and k != first_key, timeout_s=30,
                                 what="a new listen key")
                await eventually(lambda: rclient.hget(KEYS.health, "stream_state"),
                                 lambda v: v == "live", timeout_s=30, what="stream live again")
                code, report = await status_of(config)
                status_text = repr(report)
                assert code in (0, 1), report
                redis_text = dump_redis(redis_url)
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), timeout=20)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                await rclient.aclose()
        note_listen_key()
    log_text = log_path.read_text(errors="replace")
    assert "DEBUG" in log_text, "the daemon did not log at DEBUG"
    assert process.returncode == 0, log_text[-3000:]
    assert len(listen_keys) >= 2
    assert leaks(log_text, listen_keys) == [], "in the debug log"
    assert leaks(redis_text, listen_keys) == [], "in Redis"
    assert leaks(status_text, listen_keys) == [], "in status --json"
    assert ACCOUNT in redis_text  # the dump did read the account's keys
