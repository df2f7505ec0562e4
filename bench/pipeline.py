"""Prototype of ``RedisPublisher.run_many``: a batch of store effects in ONE pipelined round trip.

Measured in ``bench/mini_watchdog.py --mode batched`` and proposed for ``watchdog/store/publisher.py``
(owned by the store work, still changing when this was written: see docs/BENCHMARKS.md
"What was optimised"). Semantics are those of calling ``publisher.run(effect)`` for each effect
in order: Redis executes pipelined scripts one after another, so readers see the same writes,
only sooner. Not a transaction: after ``StoreUnavailable`` some writes may have landed; every
write is safe to repeat (CAS on version) except events, which may then appear twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redis import exceptions as redis_errors

from poswatch.scripts import script_sha
from watchdog.core.effects import Notify, Publish, RaiseAlert, Retract
from watchdog.store.connection import map_redis_errors
from watchdog.store.heartbeat import health_value
from watchdog.store.keys import member_of
from watchdog.store.publisher import RedisPublisher, StoreEffect

__all__ = ["run_many"]

Call = tuple[str, list[object], list[object]]


def _emit(publisher: RedisPublisher, kind: str, fields: Mapping[str, object]) -> Call:
    pairs = [item for name, value in fields.items() for item in (name, health_value(value))]
    k = publisher.keys
    return "emit_event", [k.events, k.health], [k.channel, "kind", kind, *pairs]


def _calls(publisher: RedisPublisher, effects: Sequence[StoreEffect]) -> list[Call]:
    k = publisher.keys
    calls: list[Call] = []
    held = publisher._held
    for effect in effects:
        match effect:
            case Publish(view=view):
                old = held.get(view.key)
                if old is None or view.version > old.version:
                    held[view.key] = view
                calls.append(("publish_position",
                              [k.position(view.key), k.positions, k.lease(view.key), k.leases,
                               k.events, k.health],
                              [member_of(view.key), view.version, view.state.value,
                               view.knowledge.value, format(view.amount, "f"),
                               format(view.entry_price, "f"), view.source.value, view.as_of_time_ms,
                               view.verified_ms, view.reason,
                               publisher._closed_ttl_ms,
                               k.channel, view.key.symbol, view.key.side.value, "0"]))
            case Retract(key=key, reason=reason):
                old = held.get(key)
                version = old.version if old is not None else 0
                calls.append(("retract_position", [k.position(key), k.positions],
                              [member_of(key), reason, version, key.symbol, key.side.value]))
            case Notify(kind=kind, key=key, detail=detail):
                calls.append(_emit(publisher, kind,
                                   {**({"position": member_of(key)} if key else {}), **dict(detail)}))
            case RaiseAlert(code=code, message=message, key=key):
                calls.append(_emit(publisher, "alert", {
                    "code": code, "message": message, **({"position": member_of(key)} if key else {})}))
    return calls


_SHAS: dict[str, str] = {}


async def _pipeline(publisher: RedisPublisher, calls: list[Call]) -> list[object]:
    pipe = publisher._redis.pipeline(transaction=False)
    for name, keys, args in calls:
        sha = _SHAS.get(name) or _SHAS.setdefault(name, script_sha(name))
        # EVALSHA directly: redis-py Script objects add a SCRIPT EXISTS round trip per execute.
        pipe.evalsha(sha, len(keys), *keys, *args)  # type: ignore[arg-type]
    return list(await pipe.execute(raise_on_error=False))


async def run_many(publisher: RedisPublisher, effects: Sequence[StoreEffect]) -> None:
    """Run ``effects`` in order in one round trip (see the module docstring)."""
    if not effects:
        return
    calls = _calls(publisher, effects)
    with map_redis_errors("pipeline"):
        replies = await _pipeline(publisher, calls)
        if any(isinstance(r, redis_errors.NoScriptError) for r in replies):
            # SCRIPT FLUSH or a restart between batches: load again, redo only what failed.
            await publisher._load_scripts()
            redo = [c for c, r in zip(calls, replies, strict=True)
                    if isinstance(r, redis_errors.NoScriptError)]
            replies = await _pipeline(publisher, redo)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
