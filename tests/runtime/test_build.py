"""``runtime.build``: one wiring, no I/O while building, the caller's parts left to the caller."""

from __future__ import annotations

import httpx
import pytest

from tests.support.pipeline import built_accounts
from watchdog.clock import SystemClock
from watchdog.config import Config, Credentials, MetricsConfig, parse_config
from watchdog.runtime.build import Endpoints, build, store_of

DAEMON_TASKS = {"core", "stream", "market", "poller", "ticker", "heartbeat", "reaper", "lead",
                "guard"}


async def _tasks_of(config: Config) -> set[str]:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    store = store_of(config)  # redis-py connects on the first command: none is sent here
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse),
                                 base_url=config.binance.rest_url) as http:
        async with build(config, Credentials("key", "secret"), SystemClock(),
                         Endpoints(http=http, store=store)) as pipeline:
            tasks = pipeline.tasks()
            # loops.py rule 4: the idle reaper hears of a need for leases after every batch.
            assert pipeline.core._after_batch == pipeline.reaper.poke
            for coro in tasks.values():
                coro.close()  # built, never started
        assert not http.is_closed  # the caller's client stays the caller's (rule 3)
    await store.close()
    assert calls == []  # building talks to nobody (rule 2)
    return set(tasks)


async def test_defaults_build_every_daemon_task_and_no_more() -> None:
    assert await _tasks_of(Config()) == DAEMON_TASKS


async def test_metrics_add_their_two_tasks() -> None:
    config = Config(metrics=MetricsConfig(listen="127.0.0.1:9731"))
    assert await _tasks_of(config) == DAEMON_TASKS | {"metrics", "metrics-events"}


async def test_accounts_of_one_process_share_one_weight_budget_per_ip_and_one_instance() -> None:
    """build.py rule 4: Binance's weight limit is the IP's, so every account's client on one
    REST URL spends from one budget; alone, a pipeline keeps its own (as before)."""
    config = parse_config({"accounts": [{"name": "a"}, {"name": "b"}],
                           "binance": {"weight_budget_pct": 30}}, "t.toml")
    built = await built_accounts(config, alone=True)
    (a, b), alone, shared = built.pipelines, built.alone, built.shared
    assert alone is not None
    assert a.rest.budget is b.rest.budget is shared.budgets[config.binance.rest_url]
    assert alone.rest.budget is not a.rest.budget
    a.store._fence = b.store._fence = 1  # both lead (as_leader): each paces for two
    assert (a.rest.budget.sharers, alone.rest.budget.sharers) == (2, 1)
    assert (a.store.keys.account, b.store.keys.account) == ("a", "b")
    assert a.store.instance == b.store.instance == shared.instance
    assert alone.store.instance != shared.instance


async def test_a_shared_budget_paces_for_the_accounts_this_instance_leads_not_its_standbys() -> None:
    """Ten accounts on two instances: each leads five and stands by for five. A standby's
    positions read is slow and fixed (not paced); counting it made the leaders pace twice as
    wide as the IP needed (10 sharers for 5 pollers)."""
    config = parse_config({"accounts": [{"name": f"a{i}"} for i in range(10)],
                           "binance": {"weight_budget_pct": 100, "poll_interval_s": 2.0}},
                          "t.toml")
    built = await built_accounts(config)
    pipelines = built.pipelines
    budget = built.shared.budgets[config.binance.rest_url]
    assert budget.sharers == 1  # nobody leads yet
    for pipeline in pipelines[:5]:
        pipeline.store._fence = 1  # leads (as_leader); the other five stand by
    assert budget.sharers == 5
    alone = type(budget)(budget.budget_per_min, lambda: 1)
    assert budget.pace_s(5, 0.0) == pytest.approx(5 * alone.pace_s(5, 0.0))
    pipelines[0].store.step_down("test")
    assert budget.sharers == 4
