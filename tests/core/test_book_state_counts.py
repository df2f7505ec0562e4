"""``PositionBook.state_counts`` (the heartbeat's counts) is ``views()`` counted, after any event."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings

from tests.core.test_book_properties import POLICY, World, _blind_scripts, _scripts
from watchdog.core.book import PositionBook
from watchdog.core.effects import Effect
from watchdog.core.events import Event


class Counted(PositionBook):
    """Checks the counts against the sorted views after every event."""

    def apply(self, event: Event, now_ms: int) -> list[Effect]:
        effects = super().apply(event, now_ms)
        assert self.state_counts() == Counter(v.state for v in self.views()), event
        return effects


def _run(ops: list[tuple[object, ...]]) -> None:
    world = World(book=Counted(POLICY))
    for name, *args in ops:
        if name in ("mute", "late"):
            setattr(world, str(name), bool(args[0]))
        else:
            getattr(world, str(name))(*args)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scripts)
def test_counts_equal_the_counted_views(ops: list[tuple[object, ...]]) -> None:
    _run(ops)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_blind_scripts)
def test_counts_equal_the_counted_views_around_blindness(ops: list[tuple[object, ...]]) -> None:
    _run(ops)


def test_an_empty_book_counts_nothing() -> None:
    assert PositionBook(POLICY).state_counts() == Counter()
