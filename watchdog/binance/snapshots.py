"""Bracketed REST reads: how the stream (after a gap) and the poller both ask for truth.

Rules of this module:
1. A position read is bracketed (core/events.py rule 3): ``SnapshotRequested`` is emitted
   *before* the HTTP call, then exactly one of ``PositionSnapshot`` / ``SnapshotFailed`` with
   the same ``request_id``. A failed read is never reported as an empty (flat) snapshot.
2. Order reads are per symbol (weight 1 each instead of 40 without a symbol); if any of a
   symbol's two reads fails, no ``OrdersSnapshot`` is emitted for it (a partial list of orders
   would look like cancelled orders). A read the client refused to send (no weight left)
   ends the batch: the symbols after it are logged as skipped, not tried one by one.
3. ``read_all_orders`` reads both lists without a symbol (weight 40 each) and emits one
   ``OrdersSnapshot(symbols=None)``: authoritative for every symbol, so it finds orders on
   symbols nothing else points at (placed while the watchdog was down). The poller's sweep
   reads one list at a time (``sweep_list``, poller.py rule 4): its snapshot says which list
   it holds (``covers_orders``/``covers_algo``) and is authoritative for that list only
   (core/orders.py rule 6).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from loguru import logger

from watchdog.binance.protocol.budget import Priority
from watchdog.binance.rest import BinanceRest
from watchdog.core.events import (
    Event,
    OpenAlgoOrder,
    OpenOrder,
    OrdersSnapshot,
    PositionSnapshot,
    SnapshotFailed,
    SnapshotRequested,
)
from watchdog.core.model import Symbol
from watchdog.errors import AuthenticationFailed, ExchangeError, ExchangeUnavailable

__all__ = ["Emit", "read_all_orders", "read_orders", "read_positions", "sweep_list"]

Emit = Callable[[Event], Awaitable[None]]


async def read_positions(rest: BinanceRest, emit: Emit, *, reason: str,
                         priority: Priority = Priority.REQUESTED) -> PositionSnapshot | None:
    """Read every position once, bracketed for the core; ``None`` when the read failed."""
    request_id = rest.next_request_id()
    requested_ms = rest.exchange_time_ms()
    await emit(SnapshotRequested(request_id, requested_ms))
    try:
        snapshot = await rest.fetch_position_snapshot(request_id=request_id,
                                                      requested_time_ms=requested_ms,
                                                      priority=priority)
    except ExchangeError as exc:
        logger.log(_level(exc), "position snapshot failed request_id={} reason={} error={}",
                   request_id, reason, exc)
        await emit(SnapshotFailed(request_id, f"{type(exc).__name__}: {exc}"))
        return None
    await emit(snapshot)
    logger.debug("position snapshot request_id={} reason={} rows={}", request_id, reason,
                 len(snapshot.positions))
    return snapshot


async def read_orders(rest: BinanceRest, emit: Emit, symbols: Iterable[Symbol], *,
                      reason: str, priority: Priority = Priority.ROUTINE) -> list[Symbol]:
    """Read open regular and algo orders for each symbol; returns the symbols read."""
    done: list[Symbol] = []
    for symbol in sorted(set(symbols)):
        requested_ms = rest.exchange_time_ms()
        try:
            algo_orders = await rest.fetch_open_algo_orders(symbol, priority=priority)
            orders = await rest.fetch_open_orders(symbol, priority=priority)
        except ExchangeError as exc:
            logger.log(_level(exc), "orders snapshot failed symbol={} reason={} error={}", symbol,
                       reason, exc)
            if _not_sent(exc):  # no weight left now: the rest would fail the same way
                rest_of = [s for s in sorted(set(symbols)) if s > symbol]
                if rest_of:
                    logger.warning("orders snapshot skipped symbols={} reason={}: no weight "
                                   "left; the poller reads them later", ",".join(rest_of),
                                   reason)
                break
            continue
        await emit(OrdersSnapshot(rest.next_request_id(), requested_ms, orders, algo_orders,
                                  frozenset({symbol})))
        done.append(symbol)
    return done


def _not_sent(exc: ExchangeError) -> bool:
    """The REST client refused to send (weight budget or ``Retry-After``), not a failed call."""
    return (isinstance(exc, ExchangeUnavailable) and exc.status is None
            and exc.retry_after_s is not None)


async def read_all_orders(rest: BinanceRest, emit: Emit, *, reason: str,
                          priority: Priority = Priority.ROUTINE) -> OrdersSnapshot | None:
    """Read open regular and algo orders of every symbol (weight 40 + 40); ``None`` on failure.

    Nothing is emitted when either read fails: a half sweep would look like cancelled orders.
    """
    requested_ms = rest.exchange_time_ms()
    try:
        algo_orders = await rest.fetch_open_algo_orders(None, priority=priority)
        orders = await rest.fetch_open_orders(None, priority=priority)
    except ExchangeError as exc:
        logger.log(_level(exc), "all-symbols orders sweep failed reason={} error={}", reason, exc)
        return None
    snapshot = OrdersSnapshot(rest.next_request_id(), requested_ms, orders, algo_orders, None)
    await emit(snapshot)
    logger.debug("all-symbols orders sweep reason={} orders={} algo_orders={}", reason,
                 len(orders), len(algo_orders))
    return snapshot


async def sweep_list(rest: BinanceRest, emit: Emit, *, algo: bool, reason: str,
                     priority: Priority = Priority.ROUTINE) -> OrdersSnapshot | None:
    """Read one list (``algo``: the open algo orders, else the regular ones) of every symbol
    (weight 40); ``None`` on failure. The snapshot holds that list only (rule 3)."""
    kind = "algo" if algo else "regular"
    requested_ms = rest.exchange_time_ms()
    orders: tuple[OpenOrder, ...] = ()
    algo_orders: tuple[OpenAlgoOrder, ...] = ()
    try:
        # Sent once: the poller backs a failed sweep off itself (rest rule 3).
        if algo:
            algo_orders = await rest.fetch_open_algo_orders(None, priority=priority, retry=False)
        else:
            orders = await rest.fetch_open_orders(None, priority=priority, retry=False)
    except ExchangeError as exc:
        logger.log(_level(exc), "all-symbols orders sweep ({} list) failed reason={} error={}",
                   kind, reason, exc)
        return None
    snapshot = OrdersSnapshot(rest.next_request_id(), requested_ms, orders, algo_orders, None,
                              covers_orders=not algo, covers_algo=algo)
    await emit(snapshot)
    logger.debug("all-symbols orders sweep list={} reason={} rows={}", kind, reason,
                 len(snapshot.algo_orders if algo else snapshot.orders))
    return snapshot


def _level(exc: ExchangeError) -> str:
    """A refused key is reported by the REST client, once a minute, not here on every poll."""
    return "DEBUG" if isinstance(exc, AuthenticationFailed) else "WARNING"
