"""Redis publication of positions and the bot-facing veto protocol (key schema v1)."""

from __future__ import annotations

__all__: list[str] = []
