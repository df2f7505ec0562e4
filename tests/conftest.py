"""Shared fixtures. Real parts only: a real redis-server on loopback, the simulator on real sockets."""

# One module per line: branches append lines here (merge=union in .gitattributes).
pytest_plugins = [
    "tests.support.redis_server",
    "tests.support.simulator",
    "tests.support.store",
    "tests.support.reaper_rig",
]
