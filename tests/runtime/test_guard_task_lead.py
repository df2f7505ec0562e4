"""The guard shell acts only on the leader (runtime/guard_task.py rule 4, docs/HA.md): the lead
is proven in Redis right before each placement and each cancel; without proof nothing is sent.
The exchange is a fake (Binance only); the lead check is the publisher's protocol."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from watchdog.core.effects import CancelGuardStop, PlaceGuardStop
from watchdog.core.guard import Guard, GuardPolicy
from watchdog.core.model import OrderId, PositionKey, PositionSide, Symbol
from watchdog.runtime.guard_task import GuardTask

KEY = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)
PLACE = PlaceGuardStop(KEY, "SELL", "wd-guard-1-1", Decimal(5), "none for 10000 ms")
REMOVE = CancelGuardStop(KEY, OrderId(77), True, "wd-guard-1-1", "covered again")


class Exchange:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def fetch_marks(self, symbol: Symbol) -> dict[PositionKey, tuple[Decimal, Decimal]]:
        return {KEY: (Decimal(1216), Decimal("0.00832684"))}

    async def fetch_tick_size(self, symbol: Symbol) -> Decimal:
        return Decimal("0.00000010")

    async def place_close_stop(self, key: PositionKey, side: str, price: Decimal,
                               client_id: str) -> int:
        self.sent.append(f"place {client_id}")
        return 77

    async def cancel_algo_order(self, *args: object, **kwargs: object) -> object:
        self.sent.append("cancel")
        raise AssertionError("no cancel may be sent without the lead")

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"unexpected exchange call {name}")


class Store:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def leased_symbols(self) -> frozenset[PositionKey]:
        self.calls.append("leased")
        return frozenset()

    async def mark_reaping(self, key: PositionKey, ttl_ms: int, reason: str = "") -> None:
        self.calls.append("mark_reaping")

    async def clear_reaping(self, key: PositionKey) -> None:
        self.calls.append("clear_reaping")

    async def emit(self, kind: str, fields: Mapping[str, object]) -> str:
        self.calls.append(kind)
        return "1-0"


class Lead:
    def __init__(self, leading: bool, proven: bool) -> None:
        self.leading, self.proven, self.confirmed = leading, proven, 0

    async def confirm_lead(self) -> bool:
        self.confirmed += 1
        return self.proven


def task(lead: Lead) -> tuple[GuardTask, Exchange, Store]:
    exchange, store = Exchange(), Store()
    guard = Guard(GuardPolicy(emergency_stop_pct=Decimal(5)))
    return GuardTask(guard, exchange, store, lambda: None, lead=lead), exchange, store  # type: ignore[arg-type]


async def test_a_deposed_leader_places_nothing() -> None:
    shell, exchange, _ = task(lead := Lead(leading=True, proven=False))  # lost it a moment ago
    outcome = await shell.place(PLACE)
    assert outcome.action == "place_failed"
    assert exchange.sent == []
    assert lead.confirmed == 1


async def test_the_leader_places_after_proving_the_lead() -> None:
    shell, exchange, _ = task(lead := Lead(leading=True, proven=True))
    outcome = await shell.place(PLACE)
    assert outcome.action == "placed"
    assert exchange.sent == ["place wd-guard-1-1"]
    assert lead.confirmed == 1


async def test_a_standby_removes_nothing_and_marks_nothing() -> None:
    shell, exchange, store = task(Lead(leading=False, proven=False))
    outcome = await shell.remove(REMOVE)
    assert outcome.action == "remove_failed"
    assert exchange.sent == []
    assert store.calls == []


async def test_a_deposed_leader_cancels_nothing() -> None:
    shell, exchange, store = task(lead := Lead(leading=True, proven=False))
    outcome = await shell.remove(REMOVE)
    assert outcome.action == "remove_failed"
    assert exchange.sent == []
    assert lead.confirmed == 1
    assert "clear_reaping" in store.calls  # its own mark is taken back
