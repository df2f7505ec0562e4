"""Health: the heartbeat hash round-trips, and the STATUS= line stays one line."""

from __future__ import annotations

import pytest

from watchdog.store.heartbeat import Health, summary_line

HEALTH = Health(pid=7, host="h", version="0.1.0", started_ms=1_000, updated_ms=9_000, ready=True,
                healthy=False, problems=("stream lost", "1 position(s) unknown"),
                stream_state="down", last_event_ms=8_000, last_snapshot_ms=8_500,
                rest_weight_used_1m=12, rest_weight_budget_1m=360, positions_open=2,
                positions_unknown=1, orphans_removed=3, reaper="dry-run")


def test_round_trip_through_string_fields() -> None:
    fields = HEALTH.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["ready"] == "true"
    assert Health.from_fields(fields) == HEALTH


def test_unknown_fields_are_kept_aside() -> None:
    fields = HEALTH.to_fields() | {"schema": "wd:v1", "instance": "h:7:ab"}
    parsed = Health.from_fields(fields)
    assert dict(parsed.extra) == {"schema": "wd:v1", "instance": "h:7:ab"}


@pytest.mark.parametrize("broken", [{"pid": "x"}, {"problems": "not json"}])
def test_a_broken_field_is_named(broken: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(broken))):
        Health.from_fields(HEALTH.to_fields() | broken)


def test_missing_identity_is_an_error() -> None:
    fields = HEALTH.to_fields()
    del fields["pid"]
    with pytest.raises(ValueError, match="pid"):
        Health.from_fields(fields)


def test_summary_line() -> None:
    line = summary_line(HEALTH, now_ms=10_000)
    assert "\n" not in line
    assert line.startswith("degraded stream=down positions=2 unknown=1 last_event_age_s=2.0")
    assert line.endswith("problems=stream lost,1 position(s) unknown")
