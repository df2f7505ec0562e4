"""The whole exception tree of position-watchdog.

Adapters raise only these types; third-party exceptions are translated once, at the boundary,
and chained with ``raise … from exc``. ``cli.py`` is the only place they become exit codes.

::

    WatchdogError
    ├── ConfigError                 exit 78 (EX_CONFIG): never restarted by systemd
    │   └── ConfigErrors            several at once (every problem of one file)
    ├── ExchangeError
    │   ├── ExchangeUnavailable     transient: network, timeout, 5xx, 429/418 (retry_after_s)
    │   ├── OutcomeUnknown          -1007 / 503 "Unknown error": the request may have executed; re-query
    │   ├── ExchangeRejected        4xx with Binance code/msg/endpoint: fatal for that request
    │   │   └── AuthenticationFailed  401 / -2015 / -2014 / -1022 → exit 77 at startup; degraded after
    │   └── WireFormatError         payload broke our expectations (bug or API change)
    ├── StoreError
    │   ├── StoreUnavailable        Redis connect/timeout
    │   └── Fenced                  a write refused by the fencing token: this instance no longer leads
    └── InvariantViolation          "this should never happen" → exit 70 (EX_SOFTWARE)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationFailed",
    "ConfigError",
    "ConfigErrors",
    "ExchangeError",
    "ExchangeRejected",
    "ExchangeUnavailable",
    "Fenced",
    "InvariantViolation",
    "OutcomeUnknown",
    "StoreError",
    "StoreUnavailable",
    "WatchdogError",
    "WireFormatError",
    "config_problems",
]

EXIT_SOFTWARE = 70
EXIT_NOPERM = 77
EXIT_CONFIG = 78


class WatchdogError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(WatchdogError):
    """The configuration is invalid; the message names file, section and key."""

    def __init__(self, path: str, section: str, key: str, problem: str) -> None:
        self.path = path
        self.section = section
        self.key = key
        self.problem = problem
        # "[section] key", "[section]", "key" (outside any section) or nothing (file-level).
        where = " ".join(part for part in (f"[{section}]" if section else "", key) if part)
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


class ConfigErrors(ConfigError):
    """Several problems found in one file, all reported at once: ``str`` is one line each.

    Its own ``path``/``section``/``key``/``problem`` are the first problem's; ``errors`` all."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = tuple(errors)
        first = self.errors[0]
        super().__init__(first.path, first.section, first.key, first.problem)
        self.args = ("\n".join(str(error) for error in self.errors),)

    def __str__(self) -> str:
        return str(self.args[0])


def config_problems(exc: ConfigError) -> tuple[ConfigError, ...]:
    """Every problem ``exc`` carries (one, or a ``ConfigErrors``' list)."""
    return exc.errors if isinstance(exc, ConfigErrors) else (exc,)


class ExchangeError(WatchdogError):
    """Anything that went wrong talking to Binance (or the simulator)."""


class ExchangeUnavailable(ExchangeError):
    """Transient: network failure, timeout, 5xx, 429 or 418. Safe to retry idempotent calls."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)


class OutcomeUnknown(ExchangeError):
    """The exchange could not say whether a mutation executed (-1007, 503 "Unknown error").

    The caller must re-query the object's state; it must never assume success or failure.
    """

    def __init__(self, message: str, *, endpoint: str = "", code: int | None = None) -> None:
        self.endpoint = endpoint
        self.code = code
        super().__init__(message)


class ExchangeRejected(ExchangeError):
    """A definite 4xx answer with a Binance error code: retrying the same request is pointless."""

    def __init__(self, code: int, msg: str, endpoint: str, status: int = 400) -> None:
        self.code = code
        self.msg = msg
        self.endpoint = endpoint
        self.status = status
        super().__init__(f"{endpoint}: Binance code {code}: {msg}")


class AuthenticationFailed(ExchangeRejected):
    """The API key was rejected: a restart cannot fix it, so the daemon exits 77."""


class WireFormatError(ExchangeError):
    """A payload did not have the shape we rely on; names the event and the field."""

    def __init__(self, event_type: str, field: str, problem: str, excerpt: str = "") -> None:
        self.event_type = event_type
        self.field = field
        self.problem = problem
        self.excerpt = excerpt[:200]
        super().__init__(f"{event_type}: field {field!r}: {problem}")


class StoreError(WatchdogError):
    """Anything that went wrong talking to Redis."""


class StoreUnavailable(StoreError):
    """Redis could not be reached or timed out."""


class Fenced(StoreError):
    """Redis refused a write: its fencing token is not the account's (another instance leads,
    or Redis lost the fence). The instance steps down at once (docs/HA.md)."""


class InvariantViolation(WatchdogError):
    """A bug: a state the code believes impossible was reached."""
