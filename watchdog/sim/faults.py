"""Fault injection as data: what the control API ``/sim/v1/faults`` sets.

A :class:`Faults` value is the current plan; :func:`apply_faults` validates a JSON document
(any subset of the keys below) and returns the new plan plus the one-shot actions it asks for.
Tests that script several steps keep a list of such documents (a :data:`FaultPlan`) and apply
them in order.

Keys (public contract, names kept exactly):
    stream            "normal" | "mute" (connected, pings answered, no events) |
                      "stall" (socket open, no frames at all, pings unanswered) |
                      "disconnect" (one-shot: drop every connection now, then "normal") |
                      "mute_new" (an addition: connections opened after it was set are muted,
                      older ones deliver; a rotation onto a mute socket, issue 12)
    drop_events       event types never delivered, e.g. ["ACCOUNT_UPDATE"]
    delay_events_ms   deliver each event that much later (order kept)
    rest_lag_ms       positionRisk / openOrders / openAlgoOrders / account answer from the state
                      as it was that long ago (Binance's REST lag)
    rest_errors       {"status": 503, "count": n[, "code": -1001, "msg": "…"]}: the next n
                      /fapi requests fail with that status and a Binance-shaped body
    clock_skew_ms     the exchange clock runs this far ahead (+) or behind (-) wall time
    ws_handshake_errors  {"status": 503, "count": n}: the next n user-stream handshakes are
                      refused with that HTTP status (an addition to the issue's list)
    reorder_events    true: events reach each connection swapped in pairs (the second first),
                      as cross-service ordering is not guaranteed (docs/BINANCE.md §1.4); an unpaired event
                      waits for the next one or for the fault to end (an addition)
    stuck_triggering  true: an algo order that triggers goes TRIGGERING and stays there (no
                      child order, openAlgoOrders stops listing it, cancel answers -2011), the
                      known Binance failure of docs/BINANCE.md §3.6 (added by the reaper work)
    market            "normal" | "mute" | "stall" | "disconnect": the same for the public market
                      streams (``/market/…``) only (added by the trigger-watching work)
    ip_not_whitelisted  true: every request with an API key (signed or listen-key) answers
                      401 -2015 "Invalid API-key, IP, or permissions for action.", as Binance does
                      for a caller outside the key's IP whitelist; public endpoints still answer
                      (added by the ops work; a wrong secret already gets -1022)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["FaultPlan", "Faults", "RestErrors", "apply_faults"]

STREAM_MODES = ("normal", "mute", "stall", "disconnect", "mute_new")
# The streams a fault document sets a mode for, and the action "disconnect" asks of each.
_DISCONNECT_ACTIONS = {"stream": "disconnect", "market": "market_disconnect"}


@dataclass(frozen=True, slots=True)
class RestErrors:
    status: int
    count: int
    code: int | None = None
    msg: str | None = None


@dataclass(frozen=True, slots=True)
class Faults:
    stream: str = "normal"
    drop_events: frozenset[str] = field(default_factory=frozenset)
    delay_events_ms: int = 0
    rest_lag_ms: int = 0
    rest_errors: RestErrors | None = None
    clock_skew_ms: int = 0
    ws_handshake_errors: RestErrors | None = None
    stuck_triggering: bool = False
    reorder_events: bool = False
    ip_not_whitelisted: bool = False
    market: str = "normal"

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["drop_events"] = sorted(self.drop_events)
        return doc


FaultPlan = list[dict[str, Any]]


def _int(doc: dict[str, Any], name: str, *, minimum: int | None = 0) -> int:
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def apply_faults(current: Faults, doc: dict[str, Any]) -> tuple[Faults, list[str]]:
    """Merge ``doc`` into ``current``; returns (new faults, one-shot actions like "disconnect").

    Raises:
        ValueError: unknown key or bad value; the message names the key.
    """
    unknown = set(doc) - {"stream", "drop_events", "delay_events_ms", "rest_lag_ms", "rest_errors",
                          "clock_skew_ms", "ws_handshake_errors", "stuck_triggering", "reorder_events",
                          "ip_not_whitelisted", "market"}
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}")
    changes: dict[str, Any] = {}
    actions: list[str] = []
    for key, disconnect in _DISCONNECT_ACTIONS.items():
        if key not in doc:
            continue
        mode = doc[key]
        if mode not in STREAM_MODES:
            raise ValueError(f"{key}: expected one of {STREAM_MODES}, got {mode!r}")
        if mode == "disconnect":  # an action, not a state: the stream is normal after it
            actions.append(disconnect)
            changes[key] = "normal"
        else:
            changes[key] = mode
    if "drop_events" in doc:
        names = doc["drop_events"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"drop_events: expected a list of event types, got {names!r}")
        changes["drop_events"] = frozenset(names)
    for name in ("delay_events_ms", "rest_lag_ms"):
        if name in doc:
            changes[name] = _int(doc, name)
    if "clock_skew_ms" in doc:
        changes["clock_skew_ms"] = _int(doc, "clock_skew_ms", minimum=None)
    for name in ("stuck_triggering", "reorder_events", "ip_not_whitelisted"):
        if name in doc:
            if not isinstance(doc[name], bool):
                raise ValueError(f"{name}: expected true or false, got {doc[name]!r}")
            changes[name] = doc[name]
    for name in ("rest_errors", "ws_handshake_errors"):
        if name in doc:
            changes[name] = _errors(name, doc[name])
    return replace(current, **changes), actions


def _errors(name: str, spec: Any) -> RestErrors | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or "status" not in spec:
        raise ValueError(f"{name}: expected {{'status', 'count'}}, got {spec!r}")
    status = _int(spec, "status", minimum=400)
    count = _int(spec, "count", minimum=0) if "count" in spec else 1
    code = spec.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise ValueError(f"{name}.code: expected an integer, got {code!r}")
    msg = spec.get("msg")
    return RestErrors(status, count, code, None if msg is None else str(msg))
