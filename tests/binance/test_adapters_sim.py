"""The Binance adapters against the simulator over real sockets, feeding a real PositionBook.

Each scenario asserts what the core then knows (its published views and stream state), never
log text. Rules checked throughout: never CLOSED from a failed read, SUSPECT/UNKNOWN during
gaps, and recovery without help.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.support.pipeline import EffectsTap, running
from watchdog.binance.poller import Poller
from watchdog.binance.rest import BinanceRest, make_http_client
from watchdog.binance.retry import RetryPolicy
from watchdog.binance.stream import UserDataStream
from watchdog.clock import SystemClock
from watchdog.config import BinanceConfig, Config, CoreConfig, Credentials, ReaperConfig, RedisConfig
from watchdog.core.book import PositionBook
from watchdog.core.effects import Publish, RaiseAlert, Reverified
from watchdog.core.events import Event, OrdersSnapshot, StreamLost, StreamPositions
from watchdog.core.model import Knowledge, PositionKey, PositionSide, PositionState, PositionView, Symbol
from watchdog.core.orders import OrderBook
from watchdog.runtime.build import Endpoints, Pipeline, build, rest_of
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

BTC = PositionKey(Symbol("BTCUSDT"), PositionSide.BOTH)


@dataclasses.dataclass
class Watch:
    """The watchdog as the daemon wires it (``runtime.build``), watched through its effects."""

    sim: Simulator
    pipeline: Pipeline
    tap: EffectsTap
    events: list[Event]

    @property
    def rest(self) -> BinanceRest:
        return self.pipeline.rest

    @property
    def stream(self) -> UserDataStream:
        return self.pipeline.stream

    @property
    def poller(self) -> Poller:
        return self.pipeline.poller

    @property
    def book(self) -> PositionBook:
        return self.pipeline.book

    @property
    def orders(self) -> OrderBook:
        return self.pipeline.orders

    @property
    def published(self) -> list[PositionView]:
        return [p.view for e in self.tap.effects  # a Reverified: its refreshes (effects rule 3)
                for p in (e.publishes() if isinstance(e, Reverified) else [e])
                if isinstance(p, Publish)]

    @property
    def alerts(self) -> list[RaiseAlert]:
        return [e for e in self.tap.effects if isinstance(e, RaiseAlert)]

    def view(self, key: PositionKey = BTC) -> PositionView | None:
        return self.book.view(key)

    async def until(self, predicate: Callable[[Watch], bool], what: str,
                    timeout_s: float = 15.0) -> None:
        async def probe() -> str:
            return f"view={self.view()} stream={self.book.stream_state}"
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(self):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what} not reached within {timeout_s}s; {await probe()}")
            await asyncio.sleep(0.02)

    async def until_state(self, state: PositionState, what: str, **kw: Any) -> None:
        await self.until(lambda w: (v := w.view()) is not None and v.state is state,
                         f"{what} ({state})", **kw)

    def never_closed_while_open(self) -> None:
        """Rule: CLOSED is only ever published from a confirmed fact of size 0."""
        for view in self.published:
            if view.state is PositionState.CLOSED:
                assert view.knowledge is Knowledge.CONFIRMED
                assert view.amount == 0


def config_of(sim: Simulator, redis_url: str, **binance: Any) -> Config:
    """Defaults, except: the simulator and Redis, fast polls and reconnects, a 3 s silence
    limit and max age (tests take seconds), and the reaper off (the adapters are under test)."""
    base: dict[str, Any] = {"rest_url": sim.rest_url, "ws_url": sim.ws_url, "poll_interval_s": 0.2,
                            "orders_poll_interval_s": 1.0, "fast_poll_interval_s": 0.2,
                            "max_silence_s": 3.0, "reconnect_min_delay_s": 0.05,
                            "reconnect_max_delay_s": 0.3}
    base.update(binance)
    return Config(binance=BinanceConfig(**base), redis=RedisConfig(url=redis_url, account="adapters"),
                  core=CoreConfig(max_age_ms=3000, max_rest_lag_ms=2000),
                  reaper=ReaperConfig(enabled=False))


@contextlib.asynccontextmanager
async def watching(sim: Simulator, redis_url: str, *, retry: RetryPolicy | None = None,
                   **binance: Any) -> AsyncIterator[Watch]:
    """``binance``: ``[binance]`` keys that differ from ``config_of``'s."""
    events: list[Event] = []
    tap = EffectsTap()
    async with build(config_of(sim, redis_url, **binance),
                     Credentials(sim.api_key, sim.api_secret), SystemClock(),
                     Endpoints(observers=(events.append,), effects=tap)) as pipeline:
        pipeline.rest._retry_policy = retry or RetryPolicy(max_delay_s=1.0, initial_s=0.05,
                                                           max_wait_s=0.2)
        watch = Watch(sim, pipeline, tap, events)
        async with running(pipeline):
            await watch.until(lambda w: w.book.stream_state == "live", "stream live")
            yield watch
            watch.never_closed_while_open()


async def open_position(w: Watch, qty: str = "0.01") -> None:
    w.sim.fill("BTCUSDT", "BUY", qty)
    await w.until(lambda w: (v := w.view()) is not None and v.state is PositionState.OPEN
                  and v.amount == Decimal(qty), "position open")


def close_position(w: Watch, qty: str = "0.01") -> None:
    w.sim.fill("BTCUSDT", "SELL", qty)


def lost_reasons(w: Watch) -> list[str]:
    return [e.reason for e in w.events if isinstance(e, StreamLost)]


def stream_amounts(events: list[Event], key: PositionKey = BTC) -> list[Decimal]:
    """Amounts of ``key`` in the frames the stream delivered."""
    return [row.amount for e in events if isinstance(e, StreamPositions)
            for row in e.positions if row.key == key]


# ---------------------------------------------------------------- scenarios


async def test_stream_reports_open_and_close(sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        await open_position(w)
        close_position(w)
        await w.until_state(PositionState.CLOSED, "closed via the stream")
        assert w.book.stream_state == "live"


async def test_muted_stream_is_found_blind_by_rest_and_reconnected(
        sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        await open_position(w)
        sim.set_faults(stream="mute")
        close_position(w)
        await w.until_state(PositionState.CLOSED, "closed seen through REST")
        await w.until(lambda w: any(a.code == "stream_blind" for a in w.alerts), "blind alert")
        await w.until(lambda w: any(r.startswith("blind") for r in lost_reasons(w)),
                      "reconnect because blind")
        sim.clear_faults()
        await w.until(lambda w: w.book.stream_state == "live", "live again")
        await open_position(w)  # events flow again


async def test_stalled_stream_is_lost_positions_stay_known_through_rest(
        sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url, max_silence_s=1.5) as w:
        await open_position(w)
        sim.set_faults(stream="stall")
        await w.until(lambda w: len(lost_reasons(w)) >= 1, "stall detected")
        # REST keeps the position confirmed (a snapshot requested after the gap).
        await w.until_state(PositionState.OPEN, "still open via REST")
        close_position(w)
        await w.until_state(PositionState.CLOSED, "closed via REST while stalled")
        sim.clear_faults()
        await w.until(lambda w: w.book.stream_state == "live", "recovers by itself")


async def test_disconnect_is_a_gap_then_recovers(sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        await open_position(w)
        sim.set_faults(stream="disconnect")
        await w.until(lambda w: len(lost_reasons(w)) >= 1, "drop seen")
        # During the gap nothing is CLOSED; afterwards the post-gap snapshot confirms again.
        await w.until(lambda w: w.book.stream_state == "live", "reconnected and reconciled")
        view = w.view()
        assert view is not None
        assert view.state is PositionState.OPEN
        close_position(w)
        await w.until_state(PositionState.CLOSED, "closed after reconnect")
        assert w.stream.stats.reconnects >= 1


async def test_listen_key_expired_reconnects_with_a_new_key(sim: Simulator,
                                                            sim_client: Any, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        await open_position(w)
        response = await sim_client.control("POST", "listen-key/expire")
        assert response.status_code == 200
        await w.until(lambda w: "listen_key_expired" in lost_reasons(w), "expiry seen")
        await w.until(lambda w: w.book.stream_state == "live", "live with a new key")
        close_position(w)
        await w.until_state(PositionState.CLOSED, "events flow on the new connection")


async def test_keepalive_minus_1125_forces_new_key(sim_factory: Any, redis_url: str) -> None:
    # Keys live 0.5 s; keepalives come every 0.8 s, so a PUT finds the key gone (-1125). The
    # listenKeyExpired event is dropped so that only the keepalive path can notice.
    async with sim_factory(time_scale=7200, ping_interval_s=0.5,
                           pong_timeout_s=5.0) as sim, \
            watching(sim, redis_url, keepalive_interval_s=0.8) as w:
        sim.set_faults(drop_events=["listenKeyExpired"])
        await w.until(lambda w: any("-1125" in r for r in lost_reasons(w)), "keepalive -1125")
        await w.until(lambda w: w.book.stream_state == "live", "recovers by itself")


async def test_rotation_before_24h_cut_leaves_no_gap(sim_factory: Any, redis_url: str) -> None:
    # The sim cuts every connection at 6 s (Binance's 24 h); we rotate at 2 s. Everything else
    # that could end a connection is set far out of reach, so only rotation is under test:
    # - the listen key lives an hour (a key scaled down to 250 ms expired whenever a loaded
    #   machine delayed a keepalive PUT by that long: listenKeyExpired, a real gap);
    # - pong and silence limits are generous for the same reason.
    # Scheduled REST position reads stay out (one a minute), and every amount below is
    # awaited in a frame the stream delivered (``StreamPositions``), not only in the book.
    async with sim_factory(connection_max_age_s=6.0, listen_key_ttl_s=3600.0,
                           ping_interval_s=0.5, pong_timeout_s=60.0) as sim, \
            watching(sim, redis_url, rotate_after_s=2.0, max_silence_s=30.0,
                     poll_interval_s=60.0) as w:
        await open_position(w)
        qty = Decimal("0.01")
        # Three rotations: the third connection is replaced at 6 s or later after the first
        # opened, so the first connection's cut has passed (the loop waits on that, not a clock).
        deadline = asyncio.get_running_loop().time() + 60.0
        while w.stream.stats.rotations < 3:
            assert asyncio.get_running_loop().time() < deadline, (
                f"3 rotations not reached within 60s; stats={w.stream.stats}")
            sim.fill("BTCUSDT", "BUY", "0.01")
            qty += Decimal("0.01")
            await w.until(lambda w, q=qty: (v := w.view()) is not None and v.amount == q
                          and q in stream_amounts(w.events), f"amount {qty} via the stream",
                          timeout_s=30.0)
            assert w.book.stream_state == "live"
            assert lost_reasons(w) == []
        assert w.stream.stats.connects == 1  # every later connection came from a rotation


async def test_rest_lag_never_reverts_a_newer_stream_fact(sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        await open_position(w)
        sim.set_faults(rest_lag_ms=1500)
        close_position(w)
        await w.until_state(PositionState.CLOSED, "closed via the stream")
        closed_at = len(w.published)
        reads = w.poller.reads
        await w.until(lambda w: w.poller.reads >= reads + 5, "several lagging polls")
        opened_again = [v for v in w.published[closed_at:] if v.state is PositionState.OPEN]
        assert opened_again == []
        assert w.view().state is PositionState.CLOSED  # type: ignore[union-attr]


async def test_5xx_burst_makes_unknown_never_closed_then_recovers(
        sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        await open_position(w)
        sim.set_faults(rest_errors={"status": 503, "count": 20})
        await w.until(lambda w: (v := w.view()) is not None and v.state is PositionState.UNKNOWN,
                      "unknown while REST fails", timeout_s=20)
        assert w.view().amount == Decimal("0.01")  # type: ignore[union-attr]
        await w.until_state(PositionState.OPEN, "recovers by itself", timeout_s=30)


async def test_5xx_burst_through_a_sweep_leaves_the_positions_poll_its_room(
        sim: Simulator, redis_url: str) -> None:
    """The CI failure of 2026-12-07: the start's sweep went late, into the burst, and its
    in-call retries (weight 40 each) spent the share, so the position stayed unknown for 30 s
    after the burst. The sweep is sent once (rest rule 3) and backs off in the poller."""
    async with watching(sim, redis_url) as w:
        await open_position(w)
        sim.set_faults(rest_errors={"status": 503, "count": 20})
        w.poller.schedule.sweep_soon(w.poller._clock.monotonic())
        await w.until(lambda w: w.poller.sweep_failures >= 1, "the sweep fails in the burst")
        await w.until_state(PositionState.OPEN, "recovers by itself", timeout_s=30)
        assert w.poller.sweep_failures == 1


async def test_429_retry_after_degrades_then_recovers(sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        await open_position(w)
        sim.set_faults(rest_errors={"status": 429, "count": 1})
        await w.until(lambda w: w.rest.degraded, "degraded after 429")
        await w.until(lambda w: not w.rest.degraded, "recovered after Retry-After")
        close_position(w)
        await w.until_state(PositionState.CLOSED, "working again")


async def test_clock_skew_is_resynced(sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url) as w:
        sim.set_faults(clock_skew_ms=30_000)
        await w.until(lambda w: abs(w.rest.offset_ms - 30_000) < 1000, "offset re-synced")
        await open_position(w)
        snapshots = w.poller.reads
        await w.until(lambda w: w.poller.reads >= snapshots + 3, "signed reads keep working")
        assert w.view().state is PositionState.OPEN  # type: ignore[union-attr]



async def test_reconnect_rereads_orders_of_flat_symbols_the_order_book_knows(
        sim: Simulator, sim_client: Any, redis_url: str) -> None:
    # ETHUSDT is flat and holds a stop the OrderBook knows. A second order placed on it while
    # the stream is muted has no event; after the reconnect it must show through the
    # post-resync re-read, not after orders_poll_interval_s (300 s) or the sweep (600 s).
    async with watching(sim, redis_url, poll_interval_s=1.0, orders_poll_interval_s=300.0) as w:
        orders = w.orders
        async def place(kind: str, trigger: str, client_id: str) -> int:
            placed = await sim_client.post(
                "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="ETHUSDT", side="SELL",
                type=kind, triggerPrice=trigger, closePosition="true", workingType="MARK_PRICE",
                clientAlgoId=client_id)
            assert placed.status_code == 200, placed.text
            return int(placed.json()["algoId"])

        def known_ids() -> set[int]:
            return {int(o.order_id) for o in orders.orders() if o.is_algo}

        first = await place("STOP_MARKET", "1000", "known-stop")
        await w.until(lambda w: first in known_ids(), "first stop known to the OrderBook")
        sim.set_faults(stream="mute")
        second = await place("TAKE_PROFIT_MARKET", "100000", "placed-in-gap")
        sim.set_faults(stream="disconnect")  # one-shot; the stream is normal again after it
        await w.until(lambda w: len(lost_reasons(w)) >= 1, "the gap seen")
        await w.until(lambda w: second in known_ids(), "the gap's order read after reconnect",
                      timeout_s=30.0)
        assert first in known_ids()


async def test_a_big_account_is_resynced_by_one_all_symbols_orders_read(sim_factory: Any) -> None:
    """stream.py rule 7: with more open symbols than one all-symbols read costs (40 x 2 > 80),
    the post-connect resync reads every symbol's orders at once (80 weight) instead of 2 a
    symbol (300 symbols: 600, over the whole share, which stopped the positions poll for a
    minute on main); the order it must see is in that read."""
    names = tuple(f"S{i:03d}USDT" for i in range(60))
    async with sim_factory(symbols=names, ping_interval_s=1.0) as sim:
        for name in names:
            sim.fill(name, "BUY", "10")
        trigger = (sim.exchange.mark[names[7]] / 2).quantize(sim.exchange.specs[names[7]].tick_size)
        stop = sim.exchange.place_algo(sim.api_key, {
            "algoType": "CONDITIONAL", "symbol": names[7], "side": "SELL",
            "type": "STOP_MARKET", "triggerPrice": f"{trigger:f}", "closePosition": "true"})
        cfg = config_of(sim, "redis://127.0.0.1:1/0")  # Redis is not used: stream and REST only
        b, clock = cfg.binance, SystemClock()
        async with make_http_client(b.rest_url, b.request_timeout_s) as http:
            rest = rest_of(cfg, Credentials(sim.api_key, sim.api_secret), clock, http)
            stream = UserDataStream(  # as runtime/build.py wires it
                rest, ws_url=b.ws_url, clock=clock, keepalive_interval_s=b.keepalive_interval_s,
                rotate_after_s=b.rotate_after_s, max_silence_s=b.max_silence_s,
                reconnect_min_delay_s=b.reconnect_min_delay_s,
                reconnect_max_delay_s=b.reconnect_max_delay_s)
            events: list[Event] = []

            async def emit(event: Event) -> None:
                events.append(event)

            task = asyncio.create_task(stream.run(emit))
            try:
                deadline = asyncio.get_running_loop().time() + 15
                while not any(isinstance(e, OrdersSnapshot) for e in events):
                    assert asyncio.get_running_loop().time() < deadline, events
                    await asyncio.sleep(0.02)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        orders = [e for e in events if isinstance(e, OrdersSnapshot)]
        assert [e.symbols for e in orders] == [None]  # one read for all, none per symbol
        assert [a.algo_id for a in orders[0].algo_orders] == [stop.algo_id]
        assert rest.own_weight_1m <= 1 + 5 + 80 + 1  # listen key, positions, the read, time
