"""The Lua sources, loaded from package data and assembled with the shared prelude (PURE).

Lua in Redis has no ``require``: each script is sent as ``[shebang] + _prelude.lua + body``.
The watchdog (publisher) and the bot (client) register the same texts, so their SHA1 digests
agree and a bot may call a script the watchdog loaded with plain ``EVALSHA``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

__all__ = ["BOT_SCRIPTS", "WATCHDOG_SCRIPTS", "script_sha", "script_source"]

# Scripts a bot runs (the ACL in docs/redis-acl.conf allows exactly these, via EVALSHA).
BOT_SCRIPTS = ("check", "begin", "confirm", "end")
# Scripts only the watchdog runs.
WATCHDOG_SCRIPTS = ("publish_position", "retract_position", "revoke_lease", "leased", "heartbeat",
                    "emit_event", "mark_stopped", "touch_verified", "mark_firing", "mark_reaping",
                    "acquire_lead", "renew_lead", "resign_lead", "set_protection", "lease_ends",
                    "register_instance")


def _read(name: str) -> str:
    return resources.files("poswatch").joinpath("lua", f"{name}.lua").read_text("utf-8")


@cache
def script_source(name: str) -> str:
    """The full text sent to Redis for script ``name`` (without the ``.lua`` suffix)."""
    body = _read(name)
    shebang = ""
    if body.startswith("#!"):
        shebang, _, body = body.partition("\n")
        shebang += "\n"
    return f"{shebang}{_read('_prelude')}\n{body}"


def script_sha(name: str) -> str:
    """SHA1 of :func:`script_source`, as ``SCRIPT LOAD`` returns it."""
    return hashlib.sha1(script_source(name).encode("utf-8"), usedforsecurity=False).hexdigest()
