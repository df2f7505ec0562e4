"""``bench/run.py``'s headline keys and table (no section runs here: the summary and the table
of a recorded result). Keys are a contract of the recorded results: only ever added."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

_RUN = Path(__file__).resolve().parents[2] / "bench" / "run.py"


@pytest.fixture(scope="module")
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_under_test", _RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved  # run.py puts bench/ first on the path for its own imports
    return module


RECORDED = {"detection_e2e": {"trials": 20, "p50_ms": 700.0, "p95_ms": 1130.0, "max_ms": 1130.0,
                              "weight_per_min": 310.0, "weight_window_s": 88.0},
            "detection_steady": {"trials": 20, "p50_ms": 600.0, "p95_ms": 950.0, "max_ms": 950.0,
                                 "weight_per_min": 345.0, "weight_window_s": 80.0}}


def test_the_steady_p95_is_a_headline_key_beside_the_start_minute_one(run: ModuleType) -> None:
    summary = run._summary(RECORDED)
    assert summary["detection_p95_ms"] == 1130.0  # the minute after a start, as before
    assert summary["detection_steady_p95_ms"] == 950.0
    keys = list(summary)
    assert keys.index("detection_steady_p95_ms") == keys.index("detection_p95_ms") + 1
    key = next(k for k in run.KEYS if k[0] == "detection_steady_p95_ms")
    assert key[3:] == (1000, "lower")


def test_the_table_shows_both_against_1_0_s(run: ModuleType) -> None:
    result = run._summary(RECORDED) | {"details": RECORDED}
    rows = run.table(result).splitlines()
    start = next(r for r in rows if "`detection_p95_ms`" in r)
    steady = next(r for r in rows if "`detection_steady_p95_ms`" in r)
    assert "1,130 ms" in start
    assert "**no**" in start
    assert "950 ms" in steady
    assert "| yes |" in steady


def test_no_steady_section_leaves_the_key_empty_not_missing(run: ModuleType) -> None:
    summary = run._summary({"detection_e2e": RECORDED["detection_e2e"]})
    assert "detection_steady_p95_ms" in summary
    assert summary["detection_steady_p95_ms"] is None
    assert "| `detection_steady_p95_ms` | — |" in run.table(summary)
