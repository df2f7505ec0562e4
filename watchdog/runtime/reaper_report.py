"""What the reaper tells: one result per selected orphan, and the events the bots read.

Rules of this module (``reaper_task`` rules 5 and 6):
1. Events about an order name the position (``position``, ``symbol``, ``side``/
   ``position_side``) and the order (``order_id``, ``client_id``, ``algo``, ``order_side``,
   ``order_type``); fields are only ever added.
2. An event or alert Redis does not take is logged as an error with the order's context; it
   never stops the reaper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from watchdog.core.effects import CancelOrder
from watchdog.core.orders import OrderBook
from watchdog.errors import StoreError
from watchdog.runtime.orphan_cancel import Outcome

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["CancelResult", "EventSink", "alert_unprotected", "order_fields", "publish"]


class EventSink(Protocol):
    """The events stream of ``store.publisher.RedisPublisher``."""

    async def emit(self, kind: str, fields: Mapping[str, object]) -> str: ...


@dataclass(frozen=True, slots=True)
class CancelResult:
    """One orphan's outcome, with the reason in words."""

    cancel: CancelOrder
    outcome: Outcome
    detail: str
    new_order_id: int | None = None  # RESTORED: the equivalent order placed


def order_fields(result: CancelResult, recipe: Mapping[str, object],
                 orders: OrderBook | None) -> dict[str, object]:
    """Rule 1: the position and the order, by name (fields only ever added)."""
    cancel = result.cancel
    tracked = orders.get(cancel.order_id, is_algo=cancel.is_algo) if orders is not None else None
    order_type = recipe.get("orderType") or recipe.get("type") or (
        tracked.order_type if tracked else "")
    order_side = recipe.get("side") or (tracked.side if tracked else "")
    return {"position": str(cancel.key), "symbol": cancel.key.symbol,
            "side": cancel.key.side.value, "position_side": cancel.key.side.value,
            "order_id": cancel.order_id, "algo": int(cancel.is_algo),
            "client_id": cancel.client_id, "order_side": str(order_side),
            "order_type": str(order_type)}


async def publish(store: EventSink, kinds: tuple[str, ...], result: CancelResult, olog: Logger,
                  recipe: Mapping[str, object], orders: OrderBook | None,
                  extra: Mapping[str, object] | None = None) -> None:
    """One event of each kind about ``result``'s order."""
    fields: dict[str, object] = {**order_fields(result, recipe, orders),
                                 "outcome": result.outcome.value,
                                 "reason": result.cancel.reason, **(extra or {})}
    for kind in kinds:
        try:
            await store.emit(kind, fields)
        except StoreError as exc:
            olog.error("event {} not written to Redis (the bot will not hear of it): {}",
                       kind, exc)


async def alert_unprotected(store: EventSink, result: CancelResult, recipe: Mapping[str, object],
                            orders: OrderBook | None, olog: Logger) -> None:
    """The ``protection_not_restored`` alert: a cancelled order whose position opened could
    not be put back."""
    cancel = result.cancel
    fields = {"code": "protection_not_restored",
              "message": f"{cancel.key}: order {cancel.order_id} ({cancel.client_id}) was "
                         f"cancelled as an orphan but its position opened meanwhile; "
                         f"re-place its protection: {result.detail}",
              **order_fields(result, recipe, orders)}
    try:
        await store.emit("alert", fields)
    except StoreError as exc:
        olog.error("alert protection_not_restored not written to Redis: {}", exc)
