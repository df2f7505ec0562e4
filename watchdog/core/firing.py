"""Which positions have a stop firing right now (PURE): what ``begin`` needs to say
``stop_triggered`` (docs/PROTOCOL.md §2).

Rules of this module:
1. A position has a stop firing while one of its algo orders is TRIGGERING or TRIGGERED
   (core/orders.py keeps those until a terminal fact of their own or of their child), or while
   a regular order that is the child of an algo order (linked by ``parent_algo_id``) is open.
   Any conditional order counts, not only reduce-only ones: either way the position is changing
   under the bot, and a veto of ``begin`` only keeps a stop in place (rule 1 of the project).
2. Of several firing orders on one position the one firing longest is published (stable).
3. ``FiringWatch`` turns the current set into ``MarkFiring`` effects for the changes only (a
   position that starts or stops firing, or whose firing order changes), so the store writes
   nothing while nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from watchdog.core.effects import Firing, MarkFiring
from watchdog.core.model import PositionKey
from watchdog.core.orders import OrderBook, TrackedOrder

__all__ = ["FiringWatch", "firing_stops"]


def _candidate(order: TrackedOrder, orders: OrderBook) -> Firing | None:
    if order.in_trigger:
        child = order.child_order_id
        working = child if child is not None and orders.get(child, is_algo=False) is not None else None
        return Firing(algo_id=order.order_id, status=order.status, since_ms=order.status_since_ms,
                      child_id=working)
    if not order.is_algo and order.parent_algo_id is not None:
        return Firing(algo_id=order.parent_algo_id, status="CHILD_WORKING",
                      since_ms=order.status_since_ms, child_id=order.order_id)
    return None


def firing_stops(orders: OrderBook) -> dict[PositionKey, Firing]:
    """Per position, the order that makes it fire (rule 1 and 2); positions without one absent."""
    found: dict[PositionKey, Firing] = {}
    for order in orders.firing_candidates():
        firing = _candidate(order, orders)
        if firing is None:
            continue
        held = found.get(order.key)
        if held is None or (firing.since_ms, firing.algo_id) < (held.since_ms, held.algo_id):
            found[order.key] = firing
    return found


@dataclass(slots=True)
class FiringWatch:
    """Remembers what was last published per position; ``update`` returns the changes (rule 3)."""

    published: dict[PositionKey, Firing]

    def __init__(self) -> None:
        self.published = {}

    def update(self, orders: OrderBook,
               crossed: Mapping[PositionKey, Firing] | None = None) -> list[MarkFiring]:
        """``crossed``: stops whose trigger a public price crossed with no word from the
        exchange yet (core/triggers.py); a stop the book shows firing wins over them."""
        now = firing_stops(orders)
        for key, firing in (crossed or {}).items():
            now.setdefault(key, firing)
        effects: list[MarkFiring] = []
        for key in sorted(self.published.keys() - now.keys()):
            effects.append(MarkFiring(key, None))
        for key in sorted(now):
            if self.published.get(key) != now[key]:
                effects.append(MarkFiring(key, now[key]))
        self.published = now
        return effects
