"""Under pytest-xdist only: the ``integration`` tests are handed out first.

They hold nearly all of the suite's wall time (real timers at the defaults: the chaos subset,
a minute of routine polls, grace and alert windows), and collection order would otherwise give
them to the workers last, leaving one worker busy with the longest of them while the other has
nothing left. The order within each group is kept; a serial run keeps the collection order.
Tests never depend on their order (each gets a flushed Redis and its own simulator)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker: the collection order
        return
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)
