"""Put back an order the reaper cancelled when its position opened meanwhile (``reaper_task``
rule 7, the restoring part). ``restore.py`` builds the equivalent order (pure); this module
places it and says so.

Rules of this module:
1. The equivalent order is placed at once on the order's own endpoint, with a new client id
   (``restore.new_client_id``), and ``protection_restored`` names the old and the new order
   and how long the position was without it.
2. A restore that cannot be placed (no recipe, refused, malformed answer) is ``UNPROTECTED``
   and raises the ``protection_not_restored`` alert. ``AuthenticationFailed`` propagates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from watchdog.core.effects import CancelOrder
from watchdog.core.orders import OrderBook
from watchdog.errors import AuthenticationFailed, ExchangeError
from watchdog.runtime.orphan_cancel import Outcome
from watchdog.runtime.reaper_report import CancelResult, EventSink, alert_unprotected, publish
from watchdog.runtime.restore import RestoreImpossible, new_client_id, restore_params

if TYPE_CHECKING:
    from loguru import Logger

    from watchdog.binance.rest import BinanceRest

__all__ = ["Done", "restore_cancelled"]


class Done(Protocol):
    """Records one order's outcome (``Reaping.done``: its hold, its log line)."""

    def __call__(self, olog: Logger, cancel: CancelOrder, outcome: Outcome, detail: str, *,
                 new_order_id: int | None = None) -> CancelResult: ...


async def restore_cancelled(exchange: BinanceRest, store: EventSink, orders: OrderBook | None,
                            cancel: CancelOrder, recipe: Mapping[str, object], sent_ms: int,
                            how: str, olog: Logger, done: Done) -> CancelResult:
    """Place an order equivalent to the one just cancelled (rule 1) and say so."""
    client_id = new_client_id(cancel.order_id)
    try:
        params = restore_params(recipe, is_algo=cancel.is_algo, client_id=client_id)
        if cancel.is_algo:
            placed = await exchange.place_algo_order(params)
            new_id = int(str(placed["algoId"]))
        else:
            placed = await exchange.place_order(params)
            new_id = int(str(placed["orderId"]))
    except AuthenticationFailed:
        raise
    except (RestoreImpossible, ExchangeError, KeyError, TypeError, ValueError) as exc:
        result = done(olog, cancel, Outcome.UNPROTECTED,
                      f"position opened during the cancel ({how}) and the order "
                      f"could not be restored: {type(exc).__name__}: {exc}")
        await alert_unprotected(store, result, recipe, orders, olog)
        return result
    unprotected_ms = exchange.exchange_time_ms() - sent_ms
    result = done(olog, cancel, Outcome.RESTORED,
                  f"position opened during the cancel ({how}): restored as "
                  f"{new_id} ({client_id}) {unprotected_ms} ms after the cancel was "
                  f"sent", new_order_id=new_id)
    await publish(store, ("protection_restored",), result, olog, recipe, orders,
                  {"new_order_id": new_id, "new_client_id": client_id,
                   "unprotected_ms": unprotected_ms, "detail": how})
    return result
