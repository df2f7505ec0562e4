"""The tests' own redis-server fixture: a server it did not start is never taken for its own
(pytest-xdist workers, or anything else on the machine, can be handed the same free port)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.redis_server import PortTaken, RedisServer


def test_a_port_where_another_redis_server_answers_is_refused(redis_server: RedisServer,
                                                              tmp_path: Path) -> None:
    intruder = RedisServer(port=redis_server.port, workdir=tmp_path)
    with pytest.raises(PortTaken):
        intruder.start()
    assert intruder.process is None
    assert redis_server.process is not None
    assert redis_server.process.poll() is None  # the session's own server untouched
