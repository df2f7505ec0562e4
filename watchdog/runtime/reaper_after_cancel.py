"""Did the position open during the cancel? (``reaper_task`` rule 7, the looking part.)

Rules of this module:
1. Open is learned from everything after the pre-cancel read that proved flat as of
   ``proven_ms``: the book shows the position open (stream facts), or a fill that may have
   opened it is dated after ``proven_ms`` (evidence even when a REST answer lagging beyond
   ``max_rest_lag_ms`` has put the book back to flat meanwhile).
2. Flat after the cancel is proven only by a REST read requested ``max_rest_lag_ms`` after the
   cancel was answered (so it cannot predate it); that bound is waited out looking at the book
   every ``POST_CANCEL_POLL_S``.
3. While it is waited out, a REST read every ``POST_CANCEL_EARLY_READ_S`` can prove open, never
   flat: a real lag shorter than the bound shows the open sooner.
4. The proving read is tried ``POST_CANCEL_READS`` times; when every try fails flatness is
   unproven and the answer is "open, amount unknown" (the caller restores the order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from watchdog.core.effects import CancelOrder
from watchdog.core.events import PositionSnapshot
from watchdog.core.model import ZERO, PositionKey
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import PositionsReader

if TYPE_CHECKING:
    from loguru import Logger

    from watchdog.binance.rest import BinanceRest

__all__ = ["POST_CANCEL_EARLY_READ_S", "POST_CANCEL_POLL_S", "POST_CANCEL_READS", "ReadPositions",
           "learned_open", "opened_after"]

POST_CANCEL_POLL_S = 0.02     # how often the book is looked at while waiting out the REST lag
POST_CANCEL_READS = 2         # tries of the post-cancel positions read (each retried inside)
POST_CANCEL_EARLY_READ_S = 0.5  # REST reads while waiting out the lag bound (rule 3): a real lag
#                                 shorter than the bound shows an open sooner than the last read

ReadPositions = Callable[[str], Awaitable[PositionSnapshot | None]]
"""A bracketed REST read of every position (``binance.snapshots.read_positions`` bound to the
client and the core's inbox); None when the read failed."""

Learned = Callable[[PositionKey, int], tuple[Decimal | None, str]]


def learned_open(positions: PositionsReader | None, orders: OrderBook | None, key: PositionKey,
                 proven_ms: int) -> tuple[Decimal | None, str]:
    """Rule 1: what the watchdog learned after the pre-cancel read, stream facts included:
    the book shows the position open, or a fill that may have opened it is dated after
    ``proven_ms`` (the re-check required every fill it knew to be ``grace_ms`` older, so
    this one was learned since). (amount, how): 0 when the amount is unknown (a fill),
    (None, '') when nothing says open."""
    view = positions.view(key) if positions is not None else None
    amount = view.amount if view is not None else ZERO
    if amount != ZERO:
        return amount, "the book shows it open"
    fill_ms = orders.last_opening_fill_ms(key.symbol) if orders is not None else None
    if fill_ms is not None and fill_ms > proven_ms:
        return ZERO, (f"the stream reported a fill on {key.symbol} at {fill_ms}, after the "
                      f"pre-cancel read proved flat as of {proven_ms}")
    return None, ""


async def opened_after(exchange: BinanceRest, read_positions: ReadPositions, learned: Learned,
                       cancel: CancelOrder, proven_ms: int, *, max_rest_lag_ms: int,
                       olog: Logger) -> tuple[Decimal | None, str]:
    """Did the position open after ``proven_ms`` (the pre-cancel read)? Returns the amount (0:
    unknown, the read failed) and how it is known, or (None, '') when flat. ``learned`` is
    ``learned_open`` on the books as they are at each call."""
    deadline_ms = exchange.exchange_time_ms() + max_rest_lag_ms
    early_ms = exchange.exchange_time_ms() + int(POST_CANCEL_EARLY_READ_S * 1000)
    while True:
        amount, how = learned(cancel.key, proven_ms)
        if amount is not None:
            return amount, how
        now_ms = exchange.exchange_time_ms()
        left_ms = deadline_ms - now_ms
        if left_ms <= 0:
            break
        if now_ms >= early_ms and left_ms > POST_CANCEL_EARLY_READ_S * 1000:
            # An early read cannot prove flat (it may predate the cancel) but can prove
            # open: the real lag is often shorter than the bound (chaos
            # rest_lag_beyond_grace_entry_muted: 3 s lag, 3.5 s bound).
            early_ms = now_ms + int(POST_CANCEL_EARLY_READ_S * 1000)
            early = await read_positions(
                f"reaper early post-cancel check of {cancel.order_id} on {cancel.key}")
            for row in (early.positions if early is not None else ()):
                if early is not None and row.key == cancel.key and row.amount != ZERO:
                    return row.amount, (
                        f"REST requested {early.requested_time_ms} (early) shows amount "
                        f"{row.amount}; flat as of {proven_ms} before the cancel")
            continue
        await asyncio.sleep(min(POST_CANCEL_POLL_S, left_ms / 1000))
    for _ in range(POST_CANCEL_READS):
        snapshot = await read_positions(
            f"reaper post-cancel check of {cancel.order_id} on {cancel.key}")
        if snapshot is not None:
            break
    else:
        olog.error("post-cancel read of positions failed: flatness after the cancel is "
                   "unproven, restoring the order")
        return ZERO, "post-cancel read failed"
    for row in snapshot.positions:
        if row.key == cancel.key and row.amount != ZERO:
            return row.amount, (f"REST requested {snapshot.requested_time_ms} shows amount "
                                f"{row.amount}; flat as of {proven_ms} before the cancel")
    return learned(cancel.key, proven_ms)
