"""Outputs of the core: what the shell must do. Nothing here performs I/O.

Rules of this module:
1. Effects are data; the runtime runs them in the order returned.
2. ``Publish`` carries the complete view, with its version, so the store can refuse older writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.core.model import OrderId, PositionKey, PositionView, Symbol

__all__ = [
    "CancelOrder",
    "Effect",
    "Notify",
    "Publish",
    "RaiseAlert",
    "RequestSnapshot",
    "Retract",
]


@dataclass(frozen=True, slots=True)
class Publish:
    """Write this view of a position to the store (open, closed or unknown)."""

    view: PositionView


@dataclass(frozen=True, slots=True)
class Retract:
    """Knowledge of this position is lost: the store must show it as unknown, with the reason."""

    key: PositionKey
    reason: str


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """Read positions (and orders) from REST; ``symbols`` None means all symbols."""

    reason: str
    symbols: frozenset[Symbol] | None = None


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Something an operator must see: logged at WARNING/ERROR and written to the events stream."""

    code: str
    message: str
    key: PositionKey | None = None


@dataclass(frozen=True, slots=True)
class Notify:
    """An entry for the bot-facing events stream (position_opened, position_closed, …)."""

    kind: str
    key: PositionKey | None = None
    detail: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """The reaper's decision to cancel one orphaned order (algo or regular)."""

    key: PositionKey
    order_id: OrderId
    is_algo: bool
    client_id: str
    reason: str


Effect = Publish | Retract | RequestSnapshot | RaiseAlert | Notify | CancelOrder
