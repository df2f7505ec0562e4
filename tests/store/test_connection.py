"""Redis URL validation (table) and a real unix:// socket connection."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poswatch.client import WatchdogClient
from tests.support.store import ACCOUNT, make_view, take_lead
from tests.support.waiting import eventually_sync
from watchdog.store.connection import validate_redis_url
from watchdog.store.publisher import RedisPublisher


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0", "redis://user:pw@redis.internal:6380/2", "rediss://redis.example.com:6380/0",
    "unix:///run/redis/redis.sock", "unix:///run/redis/redis.sock?db=1",
])
def test_accepted_urls(url: str) -> None:
    assert validate_redis_url(url) == url


@pytest.mark.parametrize(("url", "message"), [
    ("localhost:6379", "expected a redis://, rediss:// or unix:// URL"),
    ("http://127.0.0.1:6379", "expected a redis://"),
    ("unix://", "needs a socket path"),
    ("redis:///0", "needs a host"),
    ("redis://h:notaport/0", "malformed URL"),
    ("http://u:hunter2@h/0", "u:***@h"),
])
def test_rejected_urls_say_why_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the message is checked below
        validate_redis_url(url)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.fixture
def unix_url(tmp_path: Path) -> Iterator[str]:
    """A second redis-server listening on a unix socket only."""
    sock = tmp_path / "redis.sock"
    exe = shutil.which("redis-server")
    assert exe is not None
    proc = subprocess.Popen([exe, "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        eventually_sync(sock.exists, bool, what="redis unix socket")
        yield f"unix://{sock}?db=0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_unix_socket(unix_url: str) -> None:
    pub = RedisPublisher.from_url(unix_url, account=ACCOUNT, health_ttl_ms=5_000, closed_ttl_s=60,
                                  events_maxlen=100, veto_max_age_ms=5_000, socket_timeout_s=2.0)
    await pub.start()
    await take_lead(pub)
    await pub.heartbeat({"stream": "live"})
    await pub.publish(make_view(version=1, verified_ms=int(time.time() * 1000)))
    await pub.close()
    bot = WatchdogClient.from_url(unix_url, ACCOUNT)
    assert bot.check("BTCUSDT").reason == "ok"
    bot.close()
