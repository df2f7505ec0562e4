"""Redis publication of positions (key schema v1). The schema, the Lua scripts and the bots'
typed calls are the client's (:mod:`poswatch`); this package is the daemon's writing side."""

from __future__ import annotations

__all__: list[str] = []
