"""The import name `watchdog` is shared with a popular PyPI library: prove we import ours."""

from pathlib import Path

import watchdog


def test_imported_watchdog_is_this_project() -> None:
    repo = Path(__file__).resolve().parents[1]
    assert Path(watchdog.__file__).resolve().is_relative_to(repo / "watchdog")
    assert watchdog.DISTRIBUTION == "binance-position-watchdog"
