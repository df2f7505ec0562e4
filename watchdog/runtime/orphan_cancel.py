"""Cancel one selected orphan on Binance and prove what happened (the reaper's rule 2).

Rules of this module:
1. The right endpoint: an algo order is cancelled with ``DELETE /fapi/v1/algoOrder``, a regular
   order (a triggered stop's child included) with ``DELETE /fapi/v1/order``
   (docs/BINANCE.md §3.7).
2. An answer that does not prove the outcome — -2011/-2013, -1007, 503 "Unknown error", a
   transport failure — is followed by a re-query; only a terminal status (or "does not
   exist") counts as gone (docs/BINANCE.md §5.1, §5.2). ``AuthenticationFailed`` propagates (fatal).
3. Nothing here decides whether to cancel: ``reaper_task.py`` runs every check before.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from watchdog.binance.rest import BinanceRest
from watchdog.core.effects import CancelOrder
from watchdog.core.orders import ALGO_TERMINAL, ORDER_TERMINAL
from watchdog.errors import AuthenticationFailed, ExchangeError, ExchangeRejected

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["CODE_CANCEL_REJECTED", "CODE_NO_SUCH_ORDER", "Outcome", "cancel_and_prove", "requery"]

CODE_CANCEL_REJECTED = -2011  # "Unknown order sent.": gone, wrong endpoint, or triggered
CODE_NO_SUCH_ORDER = -2013    # "Order does not exist."


class Outcome(StrEnum):
    """What happened to one selected orphan."""

    REMOVED = "removed"              # the cancel was acknowledged, or the re-query proves it
    ALREADY_GONE = "already_gone"    # -2011/-2013 and the re-query shows it ended before us
    WOULD_REMOVE = "would_remove"    # dry_run: every check passed, nothing sent
    ABORTED = "aborted"              # a pre-cancel check failed: nothing sent
    FAILED = "failed"                # sent, but the order is (or may be) still open
    RESTORED = "restored"            # removed, but the position opened meanwhile: an
                                     # equivalent order was placed (reaper_task rule 7)
    UNPROTECTED = "unprotected"      # removed, the position opened meanwhile, and the
                                     # equivalent order could not be placed: alert raised


async def cancel_and_prove(exchange: BinanceRest, cancel: CancelOrder,
                           olog: Logger) -> tuple[Outcome, str]:
    """Send the cancel to the order's endpoint; an answer that proves nothing is re-queried."""
    endpoint = "DELETE /fapi/v1/algoOrder" if cancel.is_algo else "DELETE /fapi/v1/order"
    olog.info("cancelling via {}", endpoint)
    try:
        if cancel.is_algo:
            await exchange.cancel_algo_order(cancel.order_id)
        else:
            await exchange.cancel_order(cancel.key.symbol, cancel.order_id)
    except AuthenticationFailed:
        raise
    except ExchangeRejected as exc:
        if exc.code not in (CODE_CANCEL_REJECTED, CODE_NO_SUCH_ORDER):
            return Outcome.FAILED, f"{endpoint} rejected: {exc}"
        olog.warning("{} answered {}: re-querying before calling it gone", endpoint, exc.code)
        return await requery(exchange, cancel, f"{endpoint} answered {exc.code}", ours=False)
    except ExchangeError as exc:
        olog.warning("{} outcome not proven ({}): re-querying", endpoint, exc)
        return await requery(exchange, cancel, f"{endpoint}: {type(exc).__name__}", ours=True)
    return Outcome.REMOVED, f"{endpoint} acknowledged"


async def requery(exchange: BinanceRest, cancel: CancelOrder, why: str, *,
                  ours: bool) -> tuple[Outcome, str]:
    """Ask the exchange for the order's status; only a terminal status proves it gone."""
    gone = Outcome.REMOVED if ours else Outcome.ALREADY_GONE
    try:
        if cancel.is_algo:
            algo = await exchange.get_algo_order(cancel.order_id)
            answered, status, terminal = (algo.algo_id, algo.status.value,
                                          algo.status in ALGO_TERMINAL)
        else:
            row = await exchange.get_order(cancel.key.symbol, cancel.order_id)
            answered, status, terminal = row.order_id, row.status, row.status in ORDER_TERMINAL
    except AuthenticationFailed:
        raise
    except ExchangeRejected as exc:
        if exc.code in (CODE_NO_SUCH_ORDER, CODE_CANCEL_REJECTED):
            return gone, f"{why}; re-query: order does not exist ({exc.code})"
        return Outcome.FAILED, f"{why}; re-query rejected: {exc}"
    except ExchangeError as exc:
        return Outcome.FAILED, f"{why}; re-query failed, outcome unknown: {exc}"
    if answered != cancel.order_id:
        return Outcome.FAILED, f"{why}; re-query answered for order {answered}: proves nothing"
    if terminal:
        return gone, f"{why}; re-query: {status}"
    if status in ("TRIGGERING", "TRIGGERED"):
        return Outcome.FAILED, (f"{why}; re-query: {status} (triggered meanwhile: its child "
                                f"order, if any, is judged on its own)")
    return Outcome.FAILED, f"{why}; re-query: still {status}"
