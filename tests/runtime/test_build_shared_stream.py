"""build.py rule 4, the user-data side: the accounts of one process share their connections."""

from __future__ import annotations

from tests.support.pipeline import built_accounts
from watchdog.config import parse_config
from watchdog.runtime.build import shared_tasks


async def test_accounts_of_one_process_share_their_user_data_connections() -> None:
    """build.py rule 4: several accounts' streams open lanes of the connections shared per
    ``ws_url`` (binance/shared_stream.py), run by the process's task; alone, a pipeline's
    stream opens a connection of its own (as before) and the process has no such task."""
    config = parse_config({"accounts": [{"name": "a"}, {"name": "b"}],
                           "binance": {"weight_budget_pct": 30}}, "t.toml")
    built = await built_accounts(config, alone=True)
    streams, alone, shared = [p.stream for p in built.pipelines], built.alone, built.shared
    assert alone is not None
    assert list(shared.streams) == [config.binance.ws_url]
    pool = shared.streams[config.binance.ws_url]
    assert pool._accounts == {"a", "b"}
    assert set(pool._invites) == {"a", "b"}
    assert all(s._connect != s._connect_own for s in streams)
    assert alone.stream._connect == alone.stream._connect_own
    tasks = shared_tasks(shared)
    assert list(tasks) == ["user-streams-1"]
    for coro in tasks.values():
        coro.close()
