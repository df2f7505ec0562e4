"""docs/redis-acl.conf on the real server: the bot user may run verdicts but never write a position."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis import exceptions as redis_errors

from poswatch.client import WatchdogClient
from poswatch.scripts import script_sha
from tests.support.store import ACCOUNT, make_view, position_key
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

ACL_FILE = Path(__file__).parents[2] / "docs" / "redis-acl.conf"
KEYS = AccountKeys(ACCOUNT)


@pytest.fixture
def bot_url(redis_url: str) -> Iterator[str]:
    """Create the bot user from the file (account and password substituted), drop it afterwards."""
    admin = redis.Redis.from_url(redis_url)
    (line,) = [ln for ln in ACL_FILE.read_text().splitlines() if ln.startswith("user ")]
    _, name, *rules = line.replace("{main}", "{" + ACCOUNT + "}").replace(">CHANGE-ME", ">bot-pass").split()
    admin.acl_setuser(name, reset=True)
    admin.execute_command("ACL", "SETUSER", name, *rules)
    parts = urlsplit(redis_url)
    yield f"redis://{name}:bot-pass@{parts.hostname}:{parts.port}/0"
    admin.acl_deluser(name)
    admin.close()


async def test_bot_user_runs_verdicts_but_cannot_write_positions(publisher: RedisPublisher,
                                                                 bot_url: str) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(position_key(), version=1, verified_ms=int(time.time() * 1000)))
    bot = WatchdogClient.from_url(bot_url, ACCOUNT, socket_timeout_s=2.0)
    assert bot.check("BTCUSDT").reason == "ok"
    begun = bot.begin("BTCUSDT", holder="bot")
    assert begun.allowed
    assert bot.confirm("BTCUSDT", "BOTH", begun.lease or 0).reason == "ok"
    assert bot.end("BTCUSDT", "BOTH", begun.lease or 0).released
    assert next(bot.subscribe(last_id="0-0", block_ms=100)).kind == "lease"  # XREAD of the events stream
    with pytest.raises(redis_errors.NoPermissionError):
        bot.redis.hset(KEYS.position(position_key()), "state", "open")
    with pytest.raises(redis_errors.NoPermissionError):
        bot.redis.delete(KEYS.health)
    with pytest.raises(redis_errors.NoPermissionError):  # the watchdog's script, run by the bot
        bot.redis.evalsha(script_sha("publish_position"), 6, KEYS.position(position_key()), KEYS.positions,
                          KEYS.lease(position_key()), KEYS.leases, KEYS.events, KEYS.health,
                          "BTCUSDT:BOTH", 99, "closed", "confirmed", "0", "0", "rest", 1, 1, "", 1000,
                          KEYS.channel, "BTCUSDT", "BOTH", "0")
    with pytest.raises(redis_errors.NoPermissionError):
        bot.redis.eval("return 1", 0)
    bot.close()


async def test_bot_user_recovers_after_script_flush_within_a_heartbeat(
        publisher: RedisPublisher, bot_url: str, redis_url: str) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(position_key(), version=1, verified_ms=int(time.time() * 1000)))
    admin = redis.Redis.from_url(redis_url)
    admin.script_flush()
    admin.close()
    bot = WatchdogClient.from_url(bot_url, ACCOUNT, socket_timeout_s=2.0)
    assert bot.check("BTCUSDT").reason == "watchdog_down"   # may not SCRIPT LOAD: fails closed
    await publisher.heartbeat({"stream": "live"})           # notices the missing scripts, reloads
    assert bot.check("BTCUSDT").reason == "ok"
    bot.close()
