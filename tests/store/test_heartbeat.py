"""The health hash schema: Health and Stamp round-trip, secrets refused, the STATUS= line stays one line."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.store import MAX_AGE_MS
from watchdog.errors import InvariantViolation
from watchdog.store.heartbeat import Health, Stamp, check_no_secrets, summary_line
from watchdog.store.publisher import RedisPublisher

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


def test_the_stamp_round_trips_and_a_bad_number_reads_as_unknown() -> None:
    stamp = Stamp("host:1:ab", "1.2.3", veto_max_age_ms=5000, events_maxlen=100, health_ttl_ms=3000,
                  republished_total=2, lead_ttl_ms=1500)
    written = stamp.to_fields()
    assert written["schema"] == "wd:v1"
    assert {"sha_check", "sha_begin", "sha_confirm", "sha_end"} <= set(written)
    assert Stamp.read(written) == stamp
    lua = {"fence": "7", "beat_ms": "1700000000000", "clock_offset_ms": "-3"}
    assert Stamp.read({**written, **lua}) == replace(stamp, fence=7, beat_ms=1_700_000_000_000,
                                                     clock_offset_ms=-3)
    assert Stamp.read({"veto_max_age_ms": "soon", "fence": ""}) == Stamp()


def test_no_secret_looking_field_name_passes() -> None:
    check_no_secrets(["stream_state", "rest_weight_used_1m"])
    for name in ("api_key", "listenKey", "binance_secret", "SIGNATURE"):
        with pytest.raises(InvariantViolation, match="looks like a secret"):
            check_no_secrets(["ok", name])


async def test_a_real_beat_reads_back_through_the_schema(publisher: RedisPublisher) -> None:
    await publisher.heartbeat(Health(pid=1, host="h", version="v", started_ms=1, updated_ms=2).to_fields())
    raw = await publisher._redis.hgetall(publisher.keys.health)
    health, problems = Health.parse(raw)
    stamp = Stamp.read(raw)
    assert (health.pid, problems) == (1, ())
    assert (stamp.instance, stamp.fence) == (publisher.instance, publisher.fence)
    assert stamp.veto_max_age_ms == MAX_AGE_MS
    assert stamp.beat_ms
    assert stamp.clock_offset_ms is not None


@settings(max_examples=200, deadline=None)
@given(beats=st.lists(st.lists(st.sampled_from(
    ["stream", "ready", "api_key", "x_Secret", "trigger_watch", "listenKey", "pid", "problems"]),
    max_size=5), max_size=6), as_dict=st.booleans())
def test_names_remembered_clean_never_let_a_secret_through(beats: list[list[str]],
                                                           as_dict: bool) -> None:
    """``check_no_secrets`` remembers clean names: every beat still raises exactly when one of
    its names looks like a secret's, however often the clean ones came before."""
    for names in beats:
        secret = [n for n in names if any(w in n.lower() for w in ("secret", "api_key", "listenkey"))]
        given_names = dict.fromkeys(names, "1") if as_dict else names
        if secret:
            with pytest.raises(InvariantViolation, match=repr(secret[0])):
                check_no_secrets(given_names)
        else:
            check_no_secrets(given_names)


def test_the_fields_are_the_dataclass_fields_in_order() -> None:
    health = Health(pid=1, host="h", version="v", started_ms=2, updated_ms=3, ready=True,
                    problems=("a", "b"), extra=(("trigger_watch", "on"),))
    old: dict[str, str] = {}
    for item in fields(health):  # to_fields as it was (c5a007c)
        value = getattr(health, item.name)
        if item.name == "extra":
            continue
        if isinstance(value, bool):
            old[item.name] = "true" if value else "false"
        elif isinstance(value, tuple):
            old[item.name] = json.dumps(list(value), separators=(",", ":"))
        else:
            old[item.name] = str(value)
    old.update(health.extra)
    assert list(health.to_fields().items()) == list(old.items())
