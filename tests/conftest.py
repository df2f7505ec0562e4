"""Shared fixtures. Real parts only: a real redis-server on loopback, the simulator on real sockets."""

pytest_plugins = ["tests.support.redis_server", "tests.support.store"]
