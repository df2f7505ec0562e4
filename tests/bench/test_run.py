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


def test_floods_alternate_and_the_headline_is_the_median_of_the_rounds(
        run: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """--rounds: daemon, ccxt, daemon, ccxt, …; latency only in the first round of each;
    events_per_s the median of the rounds (each kept in rounds_events_per_s)."""
    order: list[tuple[str, bool]] = []
    daemon_rates, ccxt_rates = iter([20_000.0, 30_000.0, 10_000.0]), iter([9_000.0, 15_000.0,
                                                                           11_000.0])

    def ingest(url: str, count: int, details: dict, latency: bool = True) -> None:
        order.append(("daemon", latency))
        out = details.setdefault("daemon", {})
        if latency:
            out.update({"p50_ms": 1.5, "p99_ms": 3.0})
        out.update({"events_per_s": next(daemon_rates), "elapsed_s": 2.0,
                    "sim_send_per_s": 90_000.0, "drain_lag_ms": 300.0})

    def peer(count: int, details: dict, latency: bool = True) -> None:
        order.append(("ccxt", latency))
        out = details.setdefault("ccxt", {})
        out["events_per_s"] = next(ccxt_rates)
        if latency:
            out.update({"p50_ms": 1.0, "p99_ms": 1.6})

    monkeypatch.setattr(run, "section_ingest", ingest)
    monkeypatch.setattr(run, "section_peer", peer)
    args = run.argparse.Namespace(rounds=3, count=40_000)
    details: dict = {}
    steps = run._flood_steps(args, "redis://unused", details)
    assert [name for name, _ in steps] == ["ingest", "peer", "ingest#1", "peer#1", "ingest#2",
                                           "peer#2"]
    for _, step in steps:
        step()
    assert order == [("daemon", True), ("ccxt", True), ("daemon", False), ("ccxt", False),
                     ("daemon", False), ("ccxt", False)]
    assert details["daemon"]["rounds_events_per_s"] == [20_000.0, 30_000.0, 10_000.0]
    assert details["daemon"]["events_per_s"] == 20_000.0
    assert details["ccxt"]["events_per_s"] == 11_000.0
    assert details["daemon"]["p99_ms"] == 3.0  # the first round's latency stays
    summary = run._summary(details)
    assert summary["ingest_events_per_s"] == 20_000.0
    assert summary["ingest_vs_ccxt"] == round(20_000 / 11_000, 2)  # median ÷ median
    assert "daemon 20,000, 30,000, 10,000; ccxt 9,000, 15,000, 11,000" in run.table(
        summary | {"details": details})


def test_a_failed_round_is_left_out_of_the_median(run: ModuleType) -> None:
    details: dict = {}
    rates = iter([12_000.0, None])

    def step(latency: bool) -> None:
        details.setdefault("daemon", {})["events_per_s"] = next(rates)

    run._rounds(details, "daemon", 0, step)
    run._rounds(details, "daemon", 1, step)
    assert details["daemon"]["rounds_events_per_s"] == [12_000.0, None]
    assert details["daemon"]["events_per_s"] == 12_000.0
