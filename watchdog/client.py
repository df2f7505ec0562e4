"""``watchdog.client`` is the bot client :mod:`poswatch`, kept under its old name for existing bots.

New code imports ``poswatch`` (distribution ``position-watchdog-client``, which depends on
``redis`` only and does not clash with PyPI's ``watchdog``); this name stays as long as the
daemon ships, with the same objects.
"""

from __future__ import annotations

from poswatch.client import *  # noqa: F403 - the same objects, under the old name
from poswatch.client import __all__ as __all__
