"""docs/alerts.yml and docs/grafana-dashboard.json: valid, tested by promtool, and every metric
they name is one the daemon exports (a renamed metric must not leave a silent alert behind)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.store import make_view, position_key
from watchdog.clock import SystemClock
from watchdog.core.book import PositionBook
from watchdog.core.reaper import ReaperDecision
from watchdog.runtime.metrics import PREFIX, Metrics
from watchdog.runtime.vitals import Identity, Vitals

DOCS = Path(__file__).resolve().parents[1] / "docs"
PROMTOOL = shutil.which("promtool")
NAME = re.compile(r"\b(" + PREFIX + r"[a-z0-9_]+)")
# Prometheus' own series a rule or panel may use next to ours.
PROMETHEUS_SERIES = {"up"}
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install "
                                    "prometheus (.ci/bootstrap does)")


def exported_names() -> set[str]:
    """Every series name the daemon can export, each family populated once."""
    vitals = Vitals(Identity(1, "h", "1", 0), PositionBook(), weight_budget_1m=360, progress_limit_s=10)
    metrics = Metrics(vitals, SystemClock(), account="a",
                      reaper_decision=lambda: ReaperDecision(0, (), (), (), ()))

    class Guarded:  # a view with issue 17's fields, so those families have samples too
        protection, unprotected_since_ms = "none", 1
        _view = make_view(position_key("BTCUSDT"), verified_ms=1)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._view, name)

    vitals.book.views = lambda: [Guarded()]  # type: ignore[method-assign,list-item]
    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_exported_names_cover_the_issue_list() -> None:
    names = exported_names()
    for wanted in ("closure_detection_seconds_bucket", "unprotected_window_seconds_bucket",
                   "stream_state", "stream_blind_total", "stream_reconnects_total",
                   "orphans_removed_total", "protections_restored_total", "rest_weight_used_1m",
                   "rest_weight_budget_1m", "redis_publish_seconds_bucket", "position_age_seconds",
                   "position_protection", "position_unprotected_seconds", "reaper_orders",
                   "loop_stalls_total", "loop_lateness_max_seconds",
                   "loop_lateness_seconds_bucket"):
        assert PREFIX + wanted in names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [item["query"] for item in dashboard["templating"]["list"] if "query" in item]
    return exprs


def test_dashboard_is_valid_json_whose_every_expr_names_exported_metrics() -> None:
    names = exported_names()
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        used = set(NAME.findall(expr))
        assert used or re.search(r"\bup\{", expr), expr
        assert used <= names, f"{expr}: unknown {sorted(used - names)}"


def test_alert_rules_name_exported_metrics_only() -> None:
    names = exported_names()
    text = (DOCS / "alerts.yml").read_text(encoding="utf-8")
    exprs = re.findall(r"expr: \|?\n?((?:.*\n)+?)\s+(?:for|labels):", text)
    assert len(exprs) >= 9
    for expr in exprs:
        used = set(NAME.findall(expr))
        assert used, expr
        assert used <= names, f"{expr}: unknown {sorted(used - names)}"


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(DOCS / "alerts.yml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = subprocess.run([str(PROMTOOL), "test", "rules", str(DOCS / "alerts_test.yml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
