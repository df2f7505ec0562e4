"""sd_notify(3) without libsystemd: tell systemd we are ready, alive, stopping, and how we are.

Why by hand: the protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract namespace). Pulling in a C binding
for that would add a dependency for ten lines.

Rules of this module:
1. Without ``$NOTIFY_SOCKET`` every call is a no-op that returns False: the daemon runs the same
   under systemd, in a terminal and in tests.
2. A failed send is logged at WARNING and reported as False, never raised: systemd notices a
   missing ``WATCHDOG=1`` by itself (and restarts us), so a lost datagram must not kill the
   process that is otherwise healthy.
3. Say "systemd keepalive" (``WatchdogSec=``) in prose; "watchdog" is the product's name.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from loguru import logger

__all__ = [
    "Notifier",
    "watchdog_interval_s",
]

_MAX_STATUS_CHARS = 400
_DEFAULT_KEEPALIVE_INTERVAL_S = 1.0  # systemctl shows one line; keep the datagram far below any limit


def _socket_address(raw: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` → an address for ``sendto``; ``@name`` is the abstract namespace."""
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    # vsock addresses (vsock:CID:PORT) exist for VMs; we do not run there, and say so once.
    logger.warning("sd_notify: unsupported NOTIFY_SOCKET address {!r}; notifications disabled", raw)
    return None


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``: half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises.

    Returns None when systemd asked for no keepalive (unset, zero, unparsable, or meant for
    another process per ``$WATCHDOG_PID``).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000 / 2


class Notifier:
    """Sends sd_notify messages to the socket systemd gave us (or nothing, when it gave none)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._keepalive_interval_s = watchdog_interval_s(env)

    @property
    def keepalive_interval_s(self) -> float:
        """How often ``WATCHDOG=1`` is due: half of ``WatchdogSec=``, or 1 s when systemd set none."""
        return self._keepalive_interval_s or _DEFAULT_KEEPALIVE_INTERVAL_S

    @property
    def enabled(self) -> bool:
        """True when running under a supervisor that listens (Type=notify)."""
        return self._address is not None

    def notify(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when it was sent.

        Keys are upper-cased (``notify(ready="1")`` sends ``READY=1``). Values must not contain
        newlines: a newline would start a new assignment, so it is replaced by a space.
        """
        if self._address is None or not fields:
            return False
        lines = [f"{key.upper()}={str(value).replace(chr(10), ' ')}" for key, value in fields.items()]
        payload = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the event loop on a full receiver queue: a lost datagram is logged.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except OSError as exc:
            logger.warning("sd_notify failed: {} (fields={})", exc, ",".join(fields))
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """READY=1: startup is complete (the first snapshot is published)."""
        return self.notify(READY="1", **({"STATUS": _one_line(status)} if status else {}))

    def status(self, text: str) -> bool:
        """STATUS=…: the one-line summary ``systemctl status`` shows."""
        return self.notify(STATUS=_one_line(text))

    def keepalive(self) -> bool:
        """WATCHDOG=1: the core loop is alive and healthy (systemd keepalive, ``WatchdogSec=``)."""
        return self.notify(WATCHDOG="1")

    def stopping(self, status: str = "") -> bool:
        """STOPPING=1: a graceful stop has begun."""
        return self.notify(STOPPING="1", **({"STATUS": _one_line(status)} if status else {}))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_MAX_STATUS_CHARS]
