"""``GET /sim/v1/history``: the read-only journal chaos checks read the exchange's past from."""

from __future__ import annotations

from typing import Any

from tests.support.simulator import SimClient
from watchdog.sim import Simulator


async def history(sim_client: SimClient, **query: Any) -> dict[str, Any]:
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    reply = await sim_client.http.get(f"{sim_client.sim.control_url}/history?{suffix}")
    assert reply.status_code == 200, reply.text
    doc: dict[str, Any] = reply.json()
    return doc


async def test_history_records_positions_and_order_changes_with_the_amount_then(
        sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    placed = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BASUSDT",
                                   side="SELL", type="STOP_MARKET", triggerPrice="0.00771",
                                   quantity="1216", reduceOnly="true", clientAlgoId="sl-1")
    algo_id = placed.json()["algoId"]
    cancel = await sim_client.delete("/fapi/v1/algoOrder", algoId=algo_id)
    assert cancel.status_code == 200
    sim.fill("BASUSDT", "SELL", "1216")
    doc = await history(sim_client)
    entries = doc["entries"]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert doc["last_seq"] == entries[-1]["seq"]
    positions = [(e["symbol"], e["amount"]) for e in entries if e["kind"] == "position"]
    assert positions == [("BASUSDT", "1216"), ("BASUSDT", "0")]
    algos = [(e["id"], e["client_id"], e["status"], e["position_amount"])
             for e in entries if e["kind"] == "algo"]
    assert algos == [(algo_id, "sl-1", "NEW", "1216"), (algo_id, "sl-1", "CANCELED", "1216")]
    fills = [e for e in entries if e["kind"] == "order" and e["status"] == "FILLED"]
    assert [e["side"] for e in fills] == ["BUY", "SELL"]
    assert all("sim-key" not in str(e) for e in entries)  # the API key only masked
    later = await history(sim_client, since=entries[-2]["seq"])
    assert later["entries"] == entries[-1:]
    assert (await history(sim_client, since=doc["last_seq"]))["entries"] == []


async def test_a_triggered_stop_is_journalled_with_its_child(sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BASUSDT", side="SELL",
                          type="STOP_MARKET", triggerPrice="0.00771", quantity="1216", reduceOnly="true")
    sim.set_mark_price("BASUSDT", "0.0077")
    entries = (await history(sim_client))["entries"]
    statuses = [e["status"] for e in entries if e["kind"] == "algo"]
    assert statuses[0] == "NEW"
    assert statuses[-1] == "FINISHED"
    child = [e for e in entries if e["kind"] == "order" and e.get("algo_id")]
    assert child
    assert child[-1]["status"] == "FILLED"
    assert child[-1]["type"] == "STOP_MARKET"
    assert entries[-1]["kind"] in ("algo", "position", "order")
    assert [e["amount"] for e in entries if e["kind"] == "position"] == ["1216", "0"]


async def test_history_refuses_bad_paging(sim_client: SimClient) -> None:
    for query in ("since=x", "limit=0", "since=-1", "limit=10001"):
        reply = await sim_client.http.get(f"{sim_client.sim.control_url}/history?{query}")
        assert reply.status_code == 400
        assert reply.json()["error"].split(":")[0] in ("since", "limit")


def test_the_journal_is_bounded_and_pages_by_seq() -> None:
    from decimal import Decimal

    from watchdog.sim.account import Account
    from watchdog.sim.journal import Journal
    from watchdog.sim.market import default_specs

    specs = {s.symbol: s for s in default_specs(["BTCUSDT"])}
    journal = Journal(maxlen=3)
    account = Account("key", "secret", Decimal(100))
    for i in range(1, 6):
        account.position("BTCUSDT", "BOTH").amount = Decimal(i)
        journal.observe(account, specs, "key…", i, i)
    assert [e["seq"] for e in journal.entries] == [3, 4, 5]
    assert [e["amount"] for e in journal.since(0, 10)] == ["3", "4", "5"]
    assert [e["seq"] for e in journal.since(3, 1)] == [4]
    assert journal.since(5, 10) == []
    journal.observe(account, specs, "key…", 6, 6)  # nothing changed: nothing recorded
    assert journal.seq == 5
