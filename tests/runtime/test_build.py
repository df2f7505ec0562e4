"""``runtime.build``: one wiring, no I/O while building, the caller's parts left to the caller."""

from __future__ import annotations

import httpx

from watchdog.clock import SystemClock
from watchdog.config import Config, Credentials, MetricsConfig
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
