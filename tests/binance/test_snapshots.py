"""docs/RULES.md rules 1 and 3 at the REST seam: an odd positionRisk answer (HTML 502, empty body,
wrong types, null fields, duplicates, a missing symbol) must become ONE bracketed
``SnapshotFailed`` with a clear reason, never a (flat) snapshot and never an escaping exception.
``BinanceRest`` against httpx.MockTransport (a fake Binance), the real ``read_positions``."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.binance.test_rest import Creds, rest_clock
from watchdog.binance.rest import BinanceRest
from watchdog.binance.retry import RetryPolicy
from watchdog.binance.snapshots import read_positions
from watchdog.core.events import Event, PositionSnapshot, SnapshotFailed, SnapshotRequested

_REPO = Path(__file__).resolve().parents[2]
# Real payloads copied from NautilusTrader's test data (provenance: tests/fixtures/nautilus/PROVENANCE.md).
FIXTURES = _REPO / "tests" / "fixtures" / "nautilus"
ROW = {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "0.010",
       "entryPrice": "60000.5", "updateTime": 1_700_000_000_000}


def rest_answering(status: int, body: bytes, content_type: str = "application/json") -> BinanceRest:
    clock = rest_clock()

    async def sleep(s: float) -> None:
        clock.now_s += s  # retries run on the injected clock: no real waiting

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fapi/v1/time":
            return httpx.Response(200, json={"serverTime": clock.now_ms})
        return httpx.Response(status, content=body, headers={"Content-Type": content_type})

    client = httpx.AsyncClient(base_url="https://fapi.test", transport=httpx.MockTransport(handler))
    return BinanceRest(client, Creds(), clock=clock, sleep=sleep,
                       retry_policy=RetryPolicy(max_delay_s=1.0, initial_s=0.1, max_wait_s=0.3))


async def read(rest: BinanceRest) -> tuple[PositionSnapshot | None, list[Event]]:
    emitted: list[Event] = []

    async def emit(event: Event) -> None:
        emitted.append(event)

    return await read_positions(rest, emit, reason="red-team"), emitted


def row(**changes: object) -> dict[str, object]:
    out = dict(ROW)
    for k, v in changes.items():
        if v is ...:
            del out[k]
        else:
            out[k] = v
    return out


HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

ODD = {
    "html 502": (502, HTML_502, "text/html", "HTTP 502"),
    "html 200": (200, HTML_502, "text/html", "not JSON"),
    "empty 200": (200, b"", "application/json", "not JSON"),
    "null": (200, b"null", "application/json", "expected an array"),
    "string": (200, b'"[]"', "application/json", "expected an array"),
    "object without positions": (200, b'{"code": 0, "msg": "ok"}', "application/json",
                                 "positions"),
    "row is a list": (200, b"[[]]", "application/json", "[0]"),
    "positionAmt null": (200, json.dumps([row(positionAmt=None)]).encode(), "application/json",
                         "positionAmt"),
    "positionAmt missing": (200, json.dumps([row(positionAmt=...)]).encode(),
                            "application/json", "positionAmt"),
    "positionAmt text": (200, json.dumps([row(positionAmt="abc")]).encode(), "application/json",
                         "positionAmt"),
    "positionAmt bool": (200, json.dumps([row(positionAmt=True)]).encode(), "application/json",
                         "positionAmt"),
    # Bare NaN is not JSON (RFC 8259): the orjson body parser refuses the whole body.
    "positionAmt NaN": (200, b'[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":NaN,'
                        b'"entryPrice":"1","updateTime":1}]', "application/json", "not JSON"),
    "symbol missing": (200, json.dumps([row(symbol=...)]).encode(), "application/json",
                       "symbol"),
    "symbol null": (200, json.dumps([row(symbol=None)]).encode(), "application/json", "symbol"),
    "positionSide odd": (200, json.dumps([row(positionSide="both")]).encode(),
                         "application/json", "positionSide"),
    "updateTime negative": (200, json.dumps([row(updateTime=-1)]).encode(), "application/json",
                            "updateTime"),
    "duplicate rows": (200, json.dumps([row(), row(positionAmt="0")]).encode(),
                       "application/json", "duplicate"),
}


@pytest.mark.parametrize("case", sorted(ODD))
async def test_odd_position_bodies_fail_the_read_never_flat(case: str) -> None:
    status, body, content_type, says = ODD[case]
    snapshot, emitted = await read(rest_answering(status, body, content_type))
    assert snapshot is None
    assert [type(e) for e in emitted] == [SnapshotRequested, SnapshotFailed], emitted
    requested, failed = emitted
    assert isinstance(requested, SnapshotRequested)
    assert isinstance(failed, SnapshotFailed)
    assert failed.request_id == requested.request_id
    assert says in failed.reason, failed.reason


@pytest.mark.parametrize(("amt", "flat"), [
    ("0E-8", True), ("-0", True), ("-0.000", True), ("0.00000000", True), (0, True),
    ("1E-8", False), ("-0.001", False), (1.5, False)])
async def test_zero_spellings_and_numbers(amt: object, flat: bool) -> None:
    body = json.dumps([row(positionAmt=amt)]).encode()
    snapshot, _ = await read(rest_answering(200, body))
    assert snapshot is not None
    [position] = snapshot.positions
    assert (position.amount == 0) is flat
    assert position.amount == Decimal(str(amt))


@pytest.mark.parametrize("name", ["http_futures_account_positions_hedge.json",
                                  "http_futures_account_positions_one_way.json"])
async def test_shared_fixtures_parse_as_one_row_per_key(name: str) -> None:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"fixture {path} absent")
    rows = json.loads(path.read_text())
    snapshot, _ = await read(rest_answering(200, path.read_bytes()))
    assert snapshot is not None
    got = {(str(p.key.symbol), p.key.side.value): p.amount for p in snapshot.positions}
    assert got == {(r["symbol"], r["positionSide"]): Decimal(r["positionAmt"]) for r in rows}
