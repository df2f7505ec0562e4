"""Redis publication of positions (key schema v1). The key schema, the Lua scripts, the typed
script calls of both sides and the hash field names are the client's (:mod:`poswatch`); this
package is the daemon's side: what to write (publisher), who may (lead), how it travels
(runner), what it reads back (reads), the health hash (heartbeat)."""

from __future__ import annotations

__all__: list[str] = []
