"""The chaos suite's rig: real processes, outside observers, and the five invariants.

Everything runs as it would in production: ``position-watchdog run`` (a child process with a
config file at the defaults, only the URLs set), ``position-watchdog sim`` (a child process,
driven over its control API) and a redis-server we own. The invariants are judged only from
outside, through public contracts: the simulator's journal (``GET /sim/v1/history``) and state,
the Redis keys of docs/PROTOCOL.md (verdicts asked through ``poswatch``, as a bot asks),
and the daemon's exit code (docs/SERVICE.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from watchdog.demo.processes import free_port

__all__ = ["GUARD_PREFIX", "Bounds", "ChaosFailure", "Daemon", "RedisProc", "Result", "Rig",
           "check_guard", "now_ms", "rig"]

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "main"  # the default [redis] account
API_KEY, API_SECRET = "sim-key", "sim-secret"
K = f"wd:v1:{{{ACCOUNT}}}"
GUARD_PREFIX = "wd-guard-"  # the guard's last-resort stops (watchdog.core.guard, docs/GUARD.md)


@dataclass(frozen=True)
class Bounds:
    """The stated bounds of the invariants (docs/RELIABILITY.md, "Chaos suite")."""

    # (a) no allow for a position flat in the simulator for longer than this (plus the REST lag
    # or event delay a scenario injects, which the exchange itself imposes on every reader)
    closed_allow_s: float = 5.0
    # (a) no allow once the daemon is gone: at once after a graceful exit (it deletes its health
    # hash before exiting), and after SIGKILL once the last verification is older than
    # [veto] max_age_ms (3 s by default), plus 0.5 s for the probe's own round trip
    down_allow_graceful_s: float = 0.0
    down_allow_killed_s: float = 3.5
    # (b) a stop cancelled while its position was open counts as restored (not a violation)
    # only if an equivalent order is in place on the exchange within this long (issue 12, Deliver 4)
    restore_s: float = 1.0
    # (c) Redis shows the simulator's positions within this long after the faults end
    converge_s: float = 15.0
    # goal of every scenario (issue 12, Done when): the watchdog's IP weight within its share,
    # [binance] weight_budget_pct 15 % of 2400/min, in every wall-clock minute the simulator counts
    weight_share: int = 360
    # (e) the guard's last-resort stop (docs/GUARD.md): placed only on a position open in the
    # simulator, or flat for less than this (the close raced the fresh positionRisk read the
    # guard sends right before placing: one round trip)
    guard_flat_s: float = 1.0
    # (e) a stop of ours on a flat position is an orphan: gone within the reaper's bound,
    # [reaper] grace_ms 2 s + [core] max_rest_lag_ms 2 s + 1.5 s (one poll and the round trips)
    guard_orphan_s: float = 5.5


BOUNDS = Bounds()


def now_ms() -> int:
    return int(time.time() * 1000)


class ChaosFailure(AssertionError):
    """A scenario's step could not be carried out (setup, a wait that ran out)."""


@dataclass
class Result:
    name: str
    ok: bool = True
    figure: str = ""
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, what: str) -> None:
        self.ok = False
        self.failures.append(what)


# ---------------------------------------------------------------------------- processes


class RedisProc:
    """A redis-server on a fixed free port that scenarios may kill, restart or flush."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise ChaosFailure("redis-server not found on PATH (apt-get install redis-server)")
        self.proc = await asyncio.create_subprocess_exec(
            exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        client = redis.asyncio.Redis.from_url(self.url, socket_timeout=0.5)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    if await client.ping():
                        return
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise ChaosFailure(f"redis-server did not answer on {self.port} within 10 s")
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Sim:
    """``position-watchdog sim`` as a child process, driven over its control API."""

    def __init__(self, proc: asyncio.subprocess.Process, urls: dict[str, str]) -> None:
        self.proc = proc
        self.rest_url = urls["rest_url"]
        self.ws_url = urls["ws_url"]
        self.control_url = urls["control_url"]
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))

    @classmethod
    async def start(cls, *args: str) -> Sim:
        proc = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "watchdog", "--log-level", "WARNING", "sim", "--port", "0", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=_env())
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        except TimeoutError:
            proc.kill()
            raise ChaosFailure("the simulator did not print its URLs within 30 s") from None
        if not line:
            raise ChaosFailure(f"the simulator exited ({await proc.wait()}) before listening")
        return cls(proc, json.loads(line))

    async def close(self) -> None:
        await self.http.aclose()
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def control(self, method: str, path: str, doc: dict[str, Any] | None = None) -> Any:
        response = await self.http.request(method, f"{self.control_url}/{path}", json=doc)
        if response.status_code != 200:
            raise ChaosFailure(f"sim {method} {path} {doc}: {response.status_code} {response.text}")
        return response.json()

    async def faults(self, **faults: Any) -> Any:
        return await self.control("POST", "faults", faults)

    async def clear_faults(self) -> None:
        await self.control("DELETE", "faults")

    async def fill(self, symbol: str, side: str, qty: str, position_side: str | None = None) -> Any:
        doc = {"symbol": symbol, "side": side, "qty": qty}
        if position_side:
            doc["position_side"] = position_side
        return await self.control("POST", "fills", doc)

    async def mark(self, symbol: str, price: Decimal | str) -> Any:
        return await self.control("POST", "mark-price", {"symbol": symbol, "price": str(price)})

    async def state(self) -> dict[str, Any]:
        doc: dict[str, Any] = await self.control("GET", "state")
        return doc

    async def account(self) -> dict[str, Any]:
        doc: dict[str, Any] = (await self.state())["accounts"][0]
        return doc

    async def price(self, symbol: str) -> Decimal:
        return Decimal((await self.state())["prices"][symbol]["mark_price"])

    async def amounts(self) -> dict[tuple[str, str], Decimal]:
        return {(p["symbol"], p["position_side"]): Decimal(p["amount"])
                for p in (await self.account())["positions"] if Decimal(p["amount"])}

    async def open_algo_ids(self) -> set[int]:
        return {int(a["algoId"]) for a in (await self.account())["open_algo_orders"]}

    async def history(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        since = 0
        while True:
            doc = await self.control("GET", f"history?since={since}")
            entries += doc["entries"]
            if not doc["entries"] or doc["entries"][-1]["seq"] >= doc["last_seq"]:
                return entries
            since = doc["entries"][-1]["seq"]


# docs/SIMULATOR.md's weight table, for the calls the bots make (anything else counts 1)
_WEIGHTS = {("POST", "/fapi/v1/algoOrder", True): 0, ("GET", "/fapi/v1/openOrders", False): 40}


class Bot:
    """A bot's own signed REST access (shares no code with the watchdog's client, like a bot).

    Every cancel it makes is remembered: invariant (b) is about what the watchdog cancels."""

    TICKS: ClassVar[dict[str, Decimal]] = {"BTCUSDT": Decimal("0.10"), "ETHUSDT": Decimal("0.01"),
                                           "BASUSDT": Decimal("0.00000001")}

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.http = httpx.AsyncClient(base_url=sim.rest_url, headers={"X-MBX-APIKEY": API_KEY},
                                      timeout=httpx.Timeout(10.0))
        self.cancelled: set[int] = set()
        self.clock_offset_ms = 0
        self.weight = 0  # the IP weight the bot spent (the watchdog's share is judged without it)

    async def close(self) -> None:
        await self.http.aclose()

    async def signed(self, method: str, path: str, params: dict[str, str]) -> tuple[int, Any, httpx.Headers]:
        query = urlencode({**params, "timestamp": str(now_ms() + self.clock_offset_ms),
                           "recvWindow": "10000"})
        signature = hmac.new(API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        self.weight += _WEIGHTS.get((method, path, "symbol" in params), 1)
        response = await self.http.request(method, f"{path}?{query}&signature={signature}")
        return response.status_code, response.json(), response.headers

    async def sync_clock(self) -> None:
        """Follow the exchange clock (as ccxt's adjustForTimeDifference does)."""
        response = await self.http.get("/fapi/v1/time")
        self.clock_offset_ms = int(response.json()["serverTime"]) - now_ms()

    def on_tick(self, symbol: str, price: Decimal) -> str:
        tick = self.TICKS[symbol]
        return f"{price.quantize(tick):f}"

    async def stop(self, symbol: str, side: str, qty: str | None, trigger: Decimal, *,
                   position_side: str | None = None, client_id: str | None = None,
                   reduce_only: bool = True, order_type: str = "STOP_MARKET") -> int:
        params = {"algoType": "CONDITIONAL", "symbol": symbol, "side": side, "type": order_type,
                  "triggerPrice": self.on_tick(symbol, trigger), "workingType": "MARK_PRICE"}
        if qty is None:
            params["closePosition"] = "true"
        else:
            params["quantity"] = qty
            if reduce_only and position_side is None:
                params["reduceOnly"] = "true"
        if position_side:
            params["positionSide"] = position_side
        if client_id:
            params["clientAlgoId"] = client_id
        status, body, _ = await self.signed("POST", "/fapi/v1/algoOrder", params)
        if status != 200:
            raise ChaosFailure(f"bot: stop {params} refused: {body}")
        return int(body["algoId"])

    async def cancel(self, algo_id: int) -> bool:
        self.cancelled.add(algo_id)
        status, _, _ = await self.signed("DELETE", "/fapi/v1/algoOrder", {"algoId": str(algo_id)})
        return status == 200


# ---------------------------------------------------------------------------- the daemon


class Daemon:
    """``position-watchdog run --config`` as a child process, logging to a file."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.exit_codes: list[int] = []
        # down intervals [start_ms, end_ms or None, killed] for invariant (a)
        self.down: list[list[Any]] = [[0, None, False]]

    async def start(self, env: dict[str, str] | None = None) -> None:
        full = {**_env(), "BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": API_SECRET, **(env or {})}
        full.pop("NOTIFY_SOCKET", None)
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            # CHAOS_LOG_LEVEL=DEBUG: the daemon's reasoning in the kept log (CHAOS_KEEP_LOGS)
            PYTHON, "-m", "watchdog", "--log-level", os.environ.get("CHAOS_LOG_LEVEL", "INFO"),
            "run", "--config", str(self.config_path),
            stdout=log, stderr=log, env=full)
        log.close()
        if self.down and self.down[-1][1] is None:
            self.down[-1][1] = now_ms()

    def exit_code_now(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def _record_exit(self, code: int, killed: bool) -> None:
        self.exit_codes.append(code)
        self.down.append([now_ms(), None, killed])

    async def kill9(self) -> None:
        assert self.proc is not None
        at = now_ms()
        self.proc.kill()
        code = await self.proc.wait()
        self.exit_codes.append(code)
        self.down.append([at, None, True])

    async def term(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM; the exit code, or None when it did not exit in time (then it is killed)."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout=timeout_s)
        except TimeoutError:
            await self.kill9()
            return None
        self._record_exit(code, killed=False)
        return code

    async def wait_exit(self, timeout_s: float) -> int | None:
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout=timeout_s)
        except TimeoutError:
            return None
        self._record_exit(code, killed=False)
        return code

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "client"), env.get("PYTHONPATH", "")]  # client/: poswatch
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def config_text(sim: Sim, redis_url: str, extra: dict[str, dict[str, Any]] | None = None) -> str:
    """The defaults, except where the daemon finds the exchange and Redis (and ``extra``)."""
    table: dict[str, dict[str, Any]] = {"binance": {"rest_url": sim.rest_url, "ws_url": sim.ws_url},
                                        "redis": {"url": redis_url}}
    for section, values in (extra or {}).items():
        table.setdefault(section, {}).update(values)
    lines: list[str] = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- observers


@dataclass
class Probe:
    """A bot consulting the watchdog (``check``) for each watched position every 0.1 s."""

    wd: AsyncWatchdogClient
    keys: list[tuple[str, str]]
    answers: list[tuple[int, int, str, str, bool, str]] = field(default_factory=list)

    stopped: bool = False

    async def run(self) -> None:
        while not self.stopped:
            for symbol, side in self.keys:
                t0 = now_ms()
                verdict = await self.wd.check(symbol, side)
                self.answers.append((t0, now_ms(), symbol, side, verdict.allowed, verdict.reason))
            await asyncio.sleep(0.1)


@dataclass
class WeightWatch:
    """The IP weight the simulator counted, sampled every second (the bot's own spend is known)."""

    sim: Sim
    samples: list[tuple[int, int]] = field(default_factory=list)

    stopped: bool = False

    async def run(self) -> None:
        while not self.stopped:
            with contextlib.suppress(ChaosFailure, httpx.HTTPError):
                doc = await self.sim.state()
                self.samples.append((now_ms(), int(doc["weight_used_1m"])))
            await asyncio.sleep(1.0)

    @property
    def peak(self) -> int:
        return max((w for _, w in self.samples), default=0)


# ---------------------------------------------------------------------------- the rig


class Rig:
    """One scenario's world: a fresh simulator and daemon, the suite's redis-server."""

    def __init__(self, redis_proc: RedisProc, sim: Sim, workdir: Path, result: Result,
                 keys: list[tuple[str, str]]) -> None:
        self.redis_proc = redis_proc
        self.sim = sim
        self.workdir = workdir
        self.result = result
        self.bot = Bot(sim)
        self.r = redis.asyncio.Redis.from_url(redis_proc.url, decode_responses=True, socket_timeout=2)
        self.wd = AsyncWatchdogClient.from_url(redis_proc.url, ACCOUNT)
        self.daemon = Daemon(workdir / "config.toml", workdir / "watchdog.log")
        self.probe = Probe(self.wd, keys)
        self.weight = WeightWatch(sim)
        self.expect_exit: int | None = None  # the scenario ends with the daemon exited this way
        self.extra_lag_s = 0.0  # REST lag / event delay the scenario injects (bound (a) grows)
        self.faults_cleared_ms = 0
        self.bot_weight = 0
        self._tasks: list[asyncio.Task[Any]] = []

    # -- lifecycle

    def write_config(self, extra: dict[str, dict[str, Any]] | None = None) -> None:
        self.daemon.config_path.write_text(config_text(self.sim, self.redis_proc.url, extra))

    async def start_daemon(self, *, wait_ready: bool = True, env: dict[str, str] | None = None) -> None:
        if not self.daemon.config_path.exists():
            self.write_config()
        await self.daemon.start(env)
        if wait_ready:
            await self.until("daemon ready (health hash ready=true)", self._ready, timeout_s=60)

    async def _ready(self) -> bool:
        """This very process is ready (a killed one's health hash lives on for its TTL)."""
        try:
            ready, pid = await self.r.hmget(f"{K}:health", ["ready", "pid"])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False
        if self.daemon.proc is None or self.daemon.proc.returncode is not None:
            raise ChaosFailure(f"the daemon exited ({self.daemon.exit_code_now()}) before it was ready")
        return ready == "true" and pid == str(self.daemon.proc.pid)

    def observe(self) -> None:
        self._tasks += [asyncio.create_task(self.probe.run(), name="probe"),
                        asyncio.create_task(self.weight.run(), name="weight")]

    async def stop_observers(self) -> None:
        """End the probe and the weight sampler. Flag first, then cancel until each has ended:
        redis-py's asyncio client can lose a cancellation that lands inside a command
        (docs/SERVICE.md), and a lost one would leave this waiting forever."""
        self.probe.stopped = self.weight.stopped = True
        for task in self._tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
            if not task.cancelled() and task.exception() is not None:
                self.result.fail(f"harness: observer {task.get_name()} failed: {task.exception()!r}")

    async def close(self) -> None:
        await self.stop_observers()
        await self.bot.close()
        await self.wd.close()
        await self.r.aclose()

    # -- helpers for scenarios

    async def until(self, what: str, probe: Callable[[], Awaitable[Any]], *, timeout_s: float = 20.0,
                    interval_s: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = await probe()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise ChaosFailure(f"{what}: not within {timeout_s:.0f} s")
            await asyncio.sleep(interval_s)

    async def within(self, what: str, probe: Callable[[], Awaitable[Any]], timeout_s: float) -> float | None:
        """Seconds until ``probe`` held, or None (and a goal failure) when it did not in time."""
        started = time.monotonic()
        try:
            await self.until(what, probe, timeout_s=timeout_s)
        except ChaosFailure:
            self.result.fail(f"goal: {what} not within {timeout_s:.1f} s")
            return None
        return time.monotonic() - started

    async def pos(self, symbol: str, side: str = "BOTH") -> dict[str, str]:
        try:
            value: dict[str, str] = await self.r.hgetall(f"{K}:pos:{symbol}:{side}")
            return value
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return {}

    async def published(self, symbol: str, state: str, side: str = "BOTH") -> None:
        async def probe() -> bool:
            return (await self.pos(symbol, side)).get("state") == state
        await self.until(f"{symbol}:{side} published {state}", probe, timeout_s=30)

    async def allowed(self, symbol: str, side: str = "BOTH") -> bool:
        return (await self.wd.check(symbol, side)).allowed

    async def events(self, kind: str | None = None) -> list[dict[str, str]]:
        try:
            entries = await self.r.xrange(f"{K}:events", "-", "+")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return []
        found = [{"id": eid, **fields} for eid, fields in entries]
        return [e for e in found if kind is None or e.get("kind") == kind]

    async def open_with_stop(self, symbol: str, qty: str, *, stop_factor: str = "0.95",
                             position_side: str | None = None, side: str = "BUY") -> int:
        """Open (or add to) a position and give it a reduce-only stop; wait until published open."""
        await self.sim.fill(symbol, side, qty, position_side)
        price = await self.sim.price(symbol)
        close_side = "SELL" if side == "BUY" else "BUY"
        factor = Decimal(stop_factor) if side == "BUY" else 2 - Decimal(stop_factor)
        stop = await self.bot.stop(symbol, close_side, qty, price * factor, position_side=position_side)
        await self.published(symbol, "open", position_side or "BOTH")
        return stop

    async def stop_gone(self, algo_id: int) -> bool:
        return algo_id not in await self.sim.open_algo_ids()

    async def clear_faults(self) -> None:
        await self.sim.clear_faults()
        self.faults_cleared_ms = now_ms()


# ---------------------------------------------------------------------------- invariants


def _timeline(history: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[int, Decimal]]]:
    lines: dict[tuple[str, str], list[tuple[int, Decimal]]] = {}
    for e in history:
        if e["kind"] == "position":
            key = (e["symbol"], e["position_side"])
            lines.setdefault(key, []).append((e["wall_ms"], Decimal(e["amount"])))
    return lines


def _flat_throughout(line: list[tuple[int, Decimal]], start: int, end: int) -> bool:
    amount = Decimal(0)
    for at, value in line:
        if at <= start:
            amount = value
        elif at <= end and value:
            return False
    return amount == 0


def check_allow(rig: Rig, history: list[dict[str, Any]], bounds: Bounds = BOUNDS) -> tuple[int, list[str]]:
    """(a): no allow for a position flat longer than the bound, none while the daemon is down."""
    lines = _timeline(history)
    bound_ms = int((bounds.closed_allow_s + rig.extra_lag_s) * 1000)
    problems: list[str] = []
    allows = 0
    for t0, t1, symbol, side, allowed, _ in rig.probe.answers:
        if not allowed:
            continue
        allows += 1
        if _flat_throughout(lines.get((symbol, side), []), t0 - bound_ms, t1):
            problems.append(f"(a) allow for {symbol}:{side} flat since more than "
                            f"{bound_ms / 1000:.1f} s (at {t0})")
        for start, end, killed in rig.daemon.down[1:]:
            grace = bounds.down_allow_killed_s if killed else bounds.down_allow_graceful_s
            if t0 > start + grace * 1000 and (end is None or t1 < end):
                problems.append(f"(a) allow for {symbol}:{side} {(t0 - start) / 1000:.1f} s after the "
                                f"daemon {'was killed' if killed else 'exited'}")
    return allows, problems[:3] + ([f"... {len(problems) - 3} more"] if len(problems) > 3 else [])


def check_cancels(rig: Rig, history: list[dict[str, Any]], bounds: Bounds = BOUNDS) -> tuple[int, list[str]]:
    """(b): no stop cancelled (not by the bot) while its position was open in the simulator,
    unless an equivalent order was in place within ``restore_s`` (issue 12, Deliver 4)."""
    problems: list[str] = []
    restored = 0
    for i, e in enumerate(history):
        if e["kind"] not in ("algo", "order") or e["status"] != "CANCELED":
            continue
        if e["id"] in rig.bot.cancelled or e["position_amount"] == "0":
            continue
        if e.get("client_id", "").startswith(GUARD_PREFIX):
            continue  # the guard's own stop: judged by (e), check_guard
        if e["kind"] == "order" and not (e["reduce_only"] or e["close_position"]):
            continue  # a plain entry LIMIT is not protection
        same = ("symbol", "position_side", "side", "type", "trigger_price", "qty", "close_position")
        replaced = [n for n in history[i + 1:] if n["kind"] == e["kind"] and n["status"] == "NEW"
                    and all(n[f] == e[f] for f in same)
                    and n["wall_ms"] - e["wall_ms"] <= bounds.restore_s * 1000]
        if replaced:
            restored += 1
            continue
        problems.append(f"(b) {e['kind']} {e['id']} ({e['type']} {e['side']}) cancelled while "
                        f"{e['symbol']}:{e['position_side']} was open ({e['position_amount']})")
    return restored, problems


_STOPS = ("STOP", "STOP_MARKET", "TRAILING_STOP_MARKET")


def _covers(order: dict[str, Any], amount: Decimal) -> bool:
    """A bot's stop that closes the whole position (docs/GUARD.md, "Coverage")."""
    closing = "SELL" if amount > 0 or order["position_side"] == "LONG" else "BUY"
    if order["position_side"] == "SHORT":
        closing = "BUY"
    if order["type"] not in _STOPS or order["side"] != closing:
        return False
    if order["close_position"]:
        return True
    reduces = order["reduce_only"] or order["position_side"] != "BOTH"
    return bool(reduces) and Decimal(order["qty"] or "0") >= abs(amount)


def check_guard(rig: Rig, history: list[dict[str, Any]], bounds: Bounds = BOUNDS,
                end_ms: int | None = None) -> tuple[int, list[str]]:
    """(e) the guard's last-resort stops, from the simulator's journal: at most one open per
    position side; placed only on a position open (or flat for less than ``guard_flat_s``: the
    close raced the placement); one left on a flat position gone within ``guard_orphan_s``;
    removed from an open position only while a bot's own stop covers it. Returns how many were
    placed, and the problems."""
    amounts: dict[tuple[str, str], Decimal] = {}
    flat_since: dict[tuple[str, str], int] = {}
    live: dict[int, dict[str, Any]] = {}
    orphaned: dict[int, int] = {}  # our open stop → since when its position is flat
    orphan_ms = int((bounds.guard_orphan_s + rig.extra_lag_s) * 1000)
    problems: list[str] = []
    placed = 0

    def ours(order: dict[str, Any]) -> bool:
        return str(order.get("client_id", "")).startswith(GUARD_PREFIX)

    def left_on_flat(algo_id: int, until_ms: int) -> None:
        since = orphaned.pop(algo_id, None)
        if since is not None and until_ms - since > orphan_ms:
            problems.append(f"(e) guard stop {algo_id} left on a flat position for "
                            f"{(until_ms - since) / 1000:.1f} s (bound {orphan_ms / 1000:.1f} s)")

    for e in history:
        key = (e.get("symbol", ""), e.get("position_side", ""))
        at = int(e["wall_ms"])
        if e["kind"] == "position":
            amount = Decimal(e["amount"])
            was = amounts.get(key, Decimal(0))
            amounts[key] = amount
            if amount == 0 and was != 0:
                flat_since[key] = at
                orphaned.update({i: at for i, o in live.items() if ours(o)
                                 and (o["symbol"], o["position_side"]) == key})
            elif amount != 0:
                flat_since.pop(key, None)
                for i in [i for i, o in live.items() if (o["symbol"], o["position_side"]) == key]:
                    left_on_flat(i, at)
            continue
        if e["kind"] != "algo":
            continue
        if e["status"] == "NEW":
            if ours(e):
                placed += 1
                twins = [i for i, o in live.items() if ours(o) and i != e["id"]
                         and (o["symbol"], o["position_side"]) == key]
                if twins:
                    problems.append(f"(e) guard stop {e['id']} placed on {key[0]}:{key[1]} while "
                                    f"guard stop {twins[0]} was open: two on one position side")
                if Decimal(e["position_amount"]) == 0:
                    flat_for = at - flat_since.get(key, 0)
                    if flat_for > bounds.guard_flat_s * 1000:
                        problems.append(f"(e) guard stop {e['id']} placed on {key[0]}:{key[1]} flat "
                                        f"for {flat_for / 1000:.1f} s (bound {bounds.guard_flat_s:.1f} s)")
                    orphaned[e["id"]] = at
            live[e["id"]] = e
            continue
        order = live.pop(e["id"], None)
        if order is None or not ours(order):
            continue
        left_on_flat(e["id"], at)
        amount = Decimal(e["position_amount"])
        if e["status"] == "CANCELED" and amount != 0 and not any(
                _covers(o, amount) for o in live.values()
                if not ours(o) and (o["symbol"], o["position_side"]) == key):
            problems.append(f"(e) guard stop {e['id']} cancelled while {key[0]}:{key[1]} was open "
                            f"({amount}) and no stop of the bot covered it")
    end = now_ms() if end_ms is None else end_ms
    for algo_id in list(orphaned):
        left_on_flat(algo_id, end)
    return placed, problems


async def check_converged(rig: Rig, bounds: Bounds = BOUNDS) -> tuple[float | None, str]:
    """(c): Redis shows the simulator's open positions and nothing else open, within the bound."""
    started = time.monotonic()
    last = ""
    while True:
        try:
            truth = await rig.sim.amounts()
            published: dict[tuple[str, str], dict[str, str]] = {}
            async for key in rig.r.scan_iter(match=f"{K}:pos:*", count=500):
                _, symbol, side = key.rsplit(":", 2)
                published[(symbol, side)] = await rig.r.hgetall(key)
            health = await rig.r.exists(f"{K}:health")
            wrong = []
            for key, amount in truth.items():
                view = published.get(key, {})
                try:
                    same = view.get("state") == "open" and Decimal(view.get("amt", "x")) == amount
                except ArithmeticError:
                    same = False
                if not same:
                    wrong.append(f"{key[0]}:{key[1]} sim {amount} "
                                 f"redis {view.get('state')} {view.get('amt')}")
            for key, view in published.items():
                if key not in truth and view.get("state") not in ("closed", None):
                    wrong.append(f"{key[0]}:{key[1]} sim flat redis {view.get('state')} {view.get('amt')}")
            if not health:
                wrong.append("no health hash")
            if not wrong:
                return time.monotonic() - started, ""
            last = "; ".join(wrong)
        except (redis.exceptions.RedisError, ChaosFailure, httpx.HTTPError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() - started > bounds.converge_s:
            return None, last
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------- one scenario


Scenario = Callable[[Rig], Awaitable[None]]


@contextlib.asynccontextmanager
async def rig(redis_proc: RedisProc, result: Result, keys: list[tuple[str, str]],
              sim_args: tuple[str, ...] = ()) -> AsyncIterator[Rig]:
    with tempfile.TemporaryDirectory(prefix="wd-chaos-") as tmp:
        if not redis_proc.alive:
            await redis_proc.start()
        flush = redis.asyncio.Redis.from_url(redis_proc.url)
        await flush.flushall()
        await flush.script_flush()
        await flush.aclose()
        sim = await Sim.start(*sim_args)
        the_rig = Rig(redis_proc, sim, Path(tmp), result, keys)
        try:
            yield the_rig
        finally:
            await the_rig.close()
            if the_rig.daemon.running:
                await the_rig.daemon.kill9()
            keep = os.environ.get("CHAOS_KEEP_LOGS")
            if keep:  # the simulator's journal too: the sequence behind a broken invariant
                try:
                    journal = json.dumps(await sim.history(), indent=None, default=str)
                except Exception as exc:  # noqa: BLE001 - a diagnostic copy, never the verdict
                    journal = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
                await asyncio.to_thread(_keep_text, journal, Path(keep) / f"{result.name}.history.json")
            await sim.close()
            if keep:
                await asyncio.to_thread(_keep_log, the_rig.daemon.log_path, Path(keep) / f"{result.name}.log")


def _keep_text(text: str, to: Path) -> None:
    to.parent.mkdir(parents=True, exist_ok=True)
    to.write_text(text + "\n")


def _keep_log(log: Path, to: Path) -> None:
    if log.exists():
        to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, to)


async def run_scenario(name: str, body: Scenario, redis_proc: RedisProc, *,
                       keys: list[tuple[str, str]], sim_args: tuple[str, ...] = (),
                       start: bool = True) -> Result:
    """Set up, run ``body``, end the faults, then judge the five invariants from outside."""
    result = Result(name)
    started = time.monotonic()
    for name in ("watchdog.client", "poswatch"):  # the probe's "Redis down" warnings are expected
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        async with rig(redis_proc, result, keys, sim_args) as r:
            try:
                if start:
                    await r.start_daemon()
                r.observe()
                await body(r)
                if r.faults_cleared_ms == 0:
                    await r.clear_faults()
                if not redis_proc.alive:
                    await redis_proc.start()
                # (d) the daemon survives, or exited with the code the scenario documents
                if r.expect_exit is None:
                    if not r.daemon.running:
                        result.fail(f"(d) daemon exited {r.daemon.proc.returncode if r.daemon.proc else None}"
                                    f" (expected to keep running)")
                    else:
                        took, why = await check_converged(r)
                        if took is None:
                            result.fail(f"(c) Redis not converged within {BOUNDS.converge_s:.0f} s: {why}")
                        else:
                            result.figures["converged_s"] = round(took, 2)
                else:
                    codes = r.daemon.exit_codes
                    if r.expect_exit not in codes:
                        result.fail(f"(d) expected exit {r.expect_exit}, saw {codes or 'none'}")
                history = await r.sim.history()
            except ChaosFailure as exc:
                result.fail(f"step: {exc}")
                history = await r.sim.history()
            # Stop the probe before the daemon's own graceful stop below.
            await r.stop_observers()
            allows, problems = check_allow(r, history)
            for p in problems:
                result.fail(p)
            restored, problems = check_cancels(r, history)
            for p in problems:
                result.fail(p)
            guard_stops, problems = check_guard(r, history)
            for p in problems:
                result.fail(p)
            result.figures["guard_stops"] = guard_stops
            result.figures["allows"] = allows
            result.figures["restored"] = restored
            result.figures["peak_weight_1m"] = r.weight.peak
            result.figures["bot_weight"] = r.bot.weight
            if r.weight.peak - r.bot.weight > BOUNDS.weight_share:
                result.fail(f"goal: IP weight {r.weight.peak}/min, {r.weight.peak - r.bot.weight} without "
                            f"the bot's, over the watchdog's share {BOUNDS.weight_share}")
            if r.daemon.running:
                code = await r.daemon.term()
                if code != 0:
                    result.fail(f"(d) SIGTERM at the end: exit {code} (documented: 0)")
            if not result.ok:
                result.figures["log_tail"] = r.daemon.log_tail()
    except Exception as exc:  # noqa: BLE001 - the harness itself broke: this scenario's failure, reported
        result.fail(f"harness: {type(exc).__name__}: {exc}")
    result.seconds = time.monotonic() - started
    return result
