"""The guard shell removes a stop of ours for a close only while the position is still flat
(runtime/guard_task.py rule 3, core/guard.py rule 4b). The exchange is a fake (Binance only)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from watchdog.core.effects import CancelGuardStop
from watchdog.core.guard import Guard
from watchdog.core.model import OrderId, PositionKey, PositionSide, Symbol
from watchdog.runtime.guard_task import GuardTask


class _Exchange:
    def __init__(self, amount: Decimal) -> None:
        self.amount = amount
        self.sent: list[str] = []

    async def fetch_marks(self, symbol: Symbol) -> dict[PositionKey, tuple[Decimal, Decimal]]:
        self.sent.append("positionRisk")
        return {_KEY: (self.amount, Decimal("0.0083"))}

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"unexpected exchange call {name}")


class _Store:
    async def leased_symbols(self) -> frozenset[PositionKey]:
        return frozenset()

    async def mark_reaping(self, key: PositionKey, ttl_ms: int, reason: str = "") -> None:
        pass

    async def clear_reaping(self, key: PositionKey) -> None:
        pass

    async def emit(self, kind: str, fields: Mapping[str, object]) -> str:
        return "1-0"


_KEY = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)


async def test_a_stop_removed_for_a_close_is_kept_when_the_re_read_shows_the_position_open() -> None:
    """Never removed from an open position: the close the core saw may have been followed by a
    new open before the cancel goes out (the re-read comes right before it)."""
    exchange = _Exchange(Decimal(5))
    shell = GuardTask(Guard(), exchange, _Store(), lambda: None)  # type: ignore[arg-type]
    outcome = await shell.remove(CancelGuardStop(_KEY, OrderId(77), True, "wd-guard-1-1",
                                                 "the position closed", if_flat=True))
    assert outcome.action == "remove_failed"
    assert exchange.sent == ["positionRisk"]  # and no cancel (any other call fails the test)
