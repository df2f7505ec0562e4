"""``position-watchdog orphans``: what the reaper would remove now, and why every other order stays.

It reads what the daemon reads (positions, then the all-symbols read of open regular and algo
orders that the daemon's sweep makes, weight 5 + 40 + 40) and runs it through the real
``PositionBook``/``OrderBook`` and the same pure ``decide()`` the daemon uses. The grace is
judged as the daemon judges it, on the exchange's clock: the position must stay flat by an
unbroken run of REST reads for ``grace_ms``. So when an order passes every other rule and only
the grace is left (at most ``MAX_WAIT_MS``), the listing waits that long and reads once more;
a would-be orphan is then listed with ``orphan``, not ``not_flat_long_enough`` on every run.
Nothing here cancels anything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from loguru import logger

from watchdog.binance.protocol.budget import Priority
from watchdog.binance.rest import BinanceRest
from watchdog.binance.snapshots import read_all_orders, read_positions
from watchdog.clock import Clock, SystemClock
from watchdog.config import Config, Credentials
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.core.events import Event
from watchdog.core.model import PositionKey, Symbol
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import Assessment, ReaperDecision, ReaperPolicy, Why, decide
from watchdog.errors import ExchangeUnavailable, StoreError
from watchdog.store.publisher import RedisPublisher

__all__ = ["CANDIDATE", "OrphanReport", "collect", "render_json", "render_text"]

CANDIDATE = frozenset({Why.ORPHAN, Why.NOT_FLAT_LONG_ENOUGH})
"""Verdicts of an order that passes every safety rule (only the grace may be left)."""


@dataclass(frozen=True, slots=True)
class OrphanReport:
    """One listing: the decision, the policy it used, and what could not be read."""

    decision: ReaperDecision
    policy: ReaperPolicy
    symbols: tuple[Symbol, ...]
    leases: str               # "ok" or why leases are unknown (then none are assumed)
    orders_unread: tuple[Symbol, ...] = ()

    @property
    def candidates(self) -> tuple[Assessment, ...]:
        return tuple(a for a in self.decision.assessments if a.why in CANDIDATE)

    @property
    def kept(self) -> tuple[Assessment, ...]:
        return tuple(a for a in self.decision.assessments if a.why not in CANDIDATE)


MAX_WAIT_MS = 10_000
"""The longest grace the listing waits out before reading again (longer: shown as time left)."""


async def collect(config: Config, credentials: Credentials, *,
                  symbols: Iterable[Symbol] = (), clock: Clock | None = None) -> OrphanReport:
    """Read positions and every open order, judge them, wait out a short grace and judge again.

    Raises:
        AuthenticationFailed: Binance refused the credentials (the CLI exits 77).
        ExchangeError: positions or orders could not be read (a partial listing would lie).
    """
    clock = clock or SystemClock()
    b = config.binance
    book = PositionBook(BookPolicy(max_age_ms=config.core.max_age_ms,
                                 max_rest_lag_ms=config.core.max_rest_lag_ms))
    orders = OrderBook()
    seen: set[Symbol] = set(symbols)
    policy = config.reaper.policy(config.core.max_rest_lag_ms)
    leases = "ok"

    async with httpx.AsyncClient(base_url=b.rest_url,
                                 timeout=httpx.Timeout(b.request_timeout_s)) as http:
        rest = BinanceRest(http, credentials, recv_window_ms=b.recv_window_ms, clock=clock,
                           timeout=httpx.Timeout(b.request_timeout_s))
        await rest.sync_time()

        async def judge() -> ReaperDecision:
            nonlocal leases
            events: list[Event] = []

            async def emit(event: Event) -> None:
                events.append(event)

            snapshot = await read_positions(rest, emit, reason="orphans listing")
            swept = None if snapshot is None else await read_all_orders(
                rest, emit, reason="orphans listing", priority=Priority.REQUESTED)
            if snapshot is None or swept is None:
                if rest.auth_rejection is not None:
                    raise rest.auth_rejection
                what = "positions" if snapshot is None else "open orders"
                raise ExchangeUnavailable(f"{what} could not be read (see the log)",
                                          endpoint="GET /fapi/v3/positionRisk" if snapshot is None
                                          else "GET /fapi/v1/openOrders")
            seen.update(row.key.symbol for row in snapshot.positions)
            seen.update(o.symbol for o in swept.orders)
            seen.update(o.symbol for o in swept.algo_orders)
            for event in events:
                book.apply(event, clock.wall_ms())
                orders.apply(event)
            leased, leases = await _read_leases(config)  # after the reads, as the reaper does
            return decide(book, orders, leased, 0, rest.exchange_time_ms(), policy)

        decision = await judge()
        wait_ms = max((a.remaining_ms or 0 for a in decision.assessments
                       if a.why is Why.NOT_FLAT_LONG_ENOUGH), default=0)
        if 0 < wait_ms <= MAX_WAIT_MS:
            logger.info("orphans: {} ms of grace left; reading again after it, as the daemon "
                        "does", wait_ms)
            await asyncio.sleep(wait_ms / 1000 + _MARGIN_S)
            decision = await judge()
    return OrphanReport(decision, policy, tuple(sorted(seen)), leases, ())


_MARGIN_S = 0.05  # the second read's exchange time lands past the grace, not on its edge


async def _read_leases(config: Config) -> tuple[frozenset[PositionKey], str]:
    r = config.redis
    store = RedisPublisher.from_url(
        r.url, account=r.account, health_ttl_ms=r.health_ttl_ms, closed_ttl_s=r.closed_ttl_s,
        events_maxlen=r.events_maxlen, veto_max_age_ms=config.veto.max_age_ms,
        socket_timeout_s=r.socket_timeout_s, **r.client_options())
    try:
        await store.start()
        return await store.leased_symbols(), "ok"
    except StoreError as exc:
        logger.warning("leases unknown: Redis unreachable: {}", exc)
        return frozenset(), f"unknown (Redis: {exc})"
    finally:
        await store.close()


def _row(a: Assessment) -> dict[str, object]:
    o = a.order
    return {"position": str(o.key), "symbol": o.key.symbol, "position_side": o.key.side.value,
            "order_id": o.order_id, "algo": o.is_algo, "client_id": o.client_id,
            "type": o.order_type, "side": o.side, "status": o.status,
            "reduce_only": o.reduce_only, "close_position": o.close_position,
            "created_ms": o.create_time_ms, "why": a.why.value, "detail": a.detail,
            "remaining_ms": a.remaining_ms}


def render_json(report: OrphanReport) -> str:
    """One JSON object on one line (docs/REAPER.md)."""
    p = report.policy
    return json.dumps({
        "as_of_ms": report.decision.now_ms,
        "policy": {"grace_ms": p.grace_ms, "client_id_prefix": p.client_id_prefix,
                   "max_cancels_per_min": p.max_cancels_per_min,
                   "stuck_triggering_ms": p.stuck_triggering_ms, "dry_run": p.dry_run},
        "symbols": list(report.symbols), "orders_unread": list(report.orders_unread),
        "leases": report.leases,
        "candidates": [_row(a) for a in report.candidates],
        "kept": [_row(a) for a in report.kept],
        "alerts": [{"code": a.code, "message": a.message} for a in report.decision.alerts],
    }, separators=(",", ":"), default=str)


def render_text(report: OrphanReport) -> str:
    """A short table for a terminal."""
    p = report.policy
    lines = [(f"orphans at exchange time {report.decision.now_ms} ms: grace {p.grace_ms} ms, "
             f"prefix {p.client_id_prefix!r}, dry_run {p.dry_run}, leases {report.leases}"),
             f"symbols read: {', '.join(report.symbols) or '(none with a position or orders)'}"]
    if report.orders_unread:
        lines.append(f"orders NOT read for: {', '.join(report.orders_unread)} (see the log)")
    if not report.decision.assessments:
        lines.append("no open orders")
    for label, rows in (("CANDIDATE", report.candidates), ("kept", report.kept)):
        for a in rows:
            left = f" ({a.remaining_ms} ms left)" if a.remaining_ms is not None else ""
            lines.append(f"{label:<9} {a.order.describe()} client={a.order.client_id!r}: "
                         f"{a.why.value}{left}: {a.detail}")
    lines.extend(f"ALERT     {a.code}: {a.message}" for a in report.decision.alerts)
    if report.candidates:
        lines.append("a candidate is removed by the daemon once flat by REST for the grace and "
                     "flat again on a re-read just before the cancel")
    return "\n".join(lines)
