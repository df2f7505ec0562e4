"""The daemon's GC settings: startup objects frozen and a larger young threshold while it runs,
both undone when it stops (tests and embedders run the daemon in-process)."""

from __future__ import annotations

import gc

from watchdog.runtime import daemon


def test_settled_gc_freezes_startup_and_restores_the_thresholds_on_exit() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    with daemon._settled_gc():
        assert gc.get_threshold() == daemon._GC_THRESHOLDS
        assert gc.get_freeze_count() > frozen_before
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
