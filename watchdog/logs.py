"""Logging, configured in one place: loguru to stderr (journald), with secrets redacted.

Why each choice:
- stderr only: systemd's journal captures it; no files to rotate, no second sink to forget.
- Under journald (``$JOURNAL_STREAM`` names our stderr), every line starts with its syslog
  priority (``<3>`` error … ``<7>`` debug, sd-daemon(3)) and carries no timestamp of its own:
  the journal stamps each entry, and ``journalctl -p warning`` filters on the priority.
- ``diagnose=False``: loguru's default prints local variables in tracebacks, API secret included.
  ``backtrace=False``: frames above the catch point add noise, not information.
- stdlib loggers are routed into loguru (``InterceptHandler`` from loguru's README), then
  quietened: httpx's INFO line prints full signed URLs (``signature=…``), httpcore's DEBUG prints
  headers (``X-MBX-APIKEY``), websockets' DEBUG prints the request path with the listen key.
- Redaction happens twice. A patcher masks the record's message and ``extra`` so that every
  sink sees clean text; the stderr sink masks the final line again, because exception text and
  JSON output are rendered after patchers run.

Library modules only ``from loguru import logger``; nothing but ``configure_logging`` adds sinks.
The daemon calls ``register_secret`` with the API key, the secret and every listen key it gets.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["InterceptHandler", "configure_logging", "for_stderr", "redact", "register_secret",
           "stderr_is_journal", "syslog_priority"]

MASK = "***"

# Each pattern keeps group 1 (the label) and masks what follows. `\\?` lets them match inside
# JSON-escaped text ("listenKey\": \"…\"") as rendered by serialize=True. A value is masked only
# when it looks like one, a token of 16+ characters (Binance's keys, secrets, signatures and
# listen keys are 60-64): "POST /fapi/v1/listenKey: Binance … code -2015" must stay readable.
_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(signature\\?['\"]?\s*[=:]\s*\\?['\"]?)[^&\s\"'\\,}]{16,}", re.IGNORECASE),
    re.compile(r"(x-mbx-apikey\\?['\"]?\s*[:=,]\s*b?\\?['\"]?)[^\s\"'\\,}&]{16,}",
               re.IGNORECASE),
    re.compile(r"(listen_?key\\?['\"]?\s*[:=]\s*\\?['\"]?)[A-Za-z0-9]{16,}", re.IGNORECASE),
    # Path and combined-stream forms: /ws/<listenKey>, "stream":"<listenKey>", streams=<listenKey>.
    re.compile(r"(/ws/)[A-Za-z0-9]{16,}"),
    re.compile(r"(\"?stream\\?\"\s*:\s*\\?\")[A-Za-z0-9]{16,}"),
    re.compile(r"(streams=)[A-Za-z0-9]{16,}"),
)
# A long base62 token anywhere after the word "listenKey" on the same line ("listenKey expired
# WsCMN0a4…"), and any run of 60+ base62 characters at all: that is the length of Binance API
# keys, secrets, hex signatures and listen keys, and nothing we log legitimately looks like it.
_AFTER_LISTEN_KEY = re.compile(r"listen_?key[^\n]*", re.IGNORECASE)
_TOKEN_AFTER = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{32,}(?![A-Za-z0-9])")
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{60,}(?![A-Za-z0-9])")

_lock = threading.Lock()
MAX_TRANSIENT = 32
_permanent: set[str] = set()
_transient: list[str] = []
_secrets_re: re.Pattern[str] | None = None
_handler_id: int | None = None
_journal = False  # the configured sink writes to the journal (priority prefixes)

# Third-party loggers that print secrets below this level (see the module docstring).
QUIET_LOGGERS = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "websockets": logging.INFO,
                 "aiohttp.access": logging.WARNING, "hpack": logging.WARNING}


def register_secret(value: str, *, transient: bool = False) -> None:
    """Mask ``value`` wherever it appears in any later log line.

    Args:
        value: the API key, the API secret, or a listen key.
        transient: True for values that are replaced over time (listen keys): only the last
            ``MAX_TRANSIENT`` of them are kept, so that a long uptime does not grow the pattern.
    """
    global _secrets_re
    value = value.strip()
    if not value:
        return
    with _lock:
        if value in _permanent or value in _transient:
            return
        if transient:
            _transient.append(value)
            del _transient[:-MAX_TRANSIENT]
        else:
            _permanent.add(value)
        # Longest first so that a secret containing another is masked whole.
        everything = sorted(_permanent.union(_transient), key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(s) for s in everything))


def redact(text: str) -> str:
    """``text`` with signatures, API-key headers, listen keys and registered secrets masked."""
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for rule in _PATTERNS:
        text = rule.sub(lambda m: m.group(1) + MASK, text)
    text = _AFTER_LISTEN_KEY.sub(lambda m: _TOKEN_AFTER.sub(MASK, m.group(0)), text)
    return _LONG_TOKEN.sub(MASK, text)


def _redact_record(record: Record) -> None:
    """loguru patcher: clean the message and string ``extra`` values before any sink sees them."""
    record["message"] = redact(record["message"])
    extra = record["extra"]
    for key, value in extra.items():
        if isinstance(value, str):
            extra[key] = redact(value)
        elif not isinstance(value, int | float | bool) and value is not None:
            text = str(value)
            cleaned = redact(text)
            if cleaned != text:  # keep types for JSON unless the value carried a secret
                extra[key] = cleaned


class _RedactingStderr:
    """A stream sink: the rendered line (traceback and JSON included) is masked once more.

    ``sys.stderr`` is looked up on every write so that test capture and re-opened streams work.
    ``journal``: prefix every line (each traceback line too: the journal stores each line as its
    own entry) with the record's syslog priority.
    """

    def __init__(self, journal: bool = False) -> None:
        self._journal = journal

    def write(self, message: str) -> None:
        text = redact(message)
        if self._journal:
            record = getattr(message, "record", None)
            prefix = f"<{syslog_priority(record['level'].no if record else logging.INFO)}>"
            text = "".join(prefix + line + "\n" for line in text.splitlines())
        sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _format(record: Record) -> str:
    """Readable line: UTC time (like exchange timestamps), level, origin, message, key=value context."""
    context = " ".join(f"{k}={v}" for k, v in record["extra"].items())
    context = context.replace("{", "{{").replace("}", "}}")
    tail = f" | {context}" if context else ""
    return ("{time:YYYY-MM-DD HH:mm:ss.SSS!UTC}Z | {level: <7} | {name}:{line} | {message}"
            + tail + "\n{exception}")


def _journal_format(record: Record) -> str:
    """The readable line without its timestamp: the journal has one for every entry."""
    return _format(record).replace("{time:YYYY-MM-DD HH:mm:ss.SSS!UTC}Z | ", "", 1)


def syslog_priority(level_no: int) -> int:
    """The syslog priority of a log level number: the ``<N>`` prefix journald reads
    (sd-daemon(3)): 2 critical, 3 error, 4 warning, 5 notice (loguru SUCCESS), 6 info, 7 debug."""
    for floor, priority in ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                            (25, 5), (logging.INFO, 6)):
        if level_no >= floor:
            return priority
    return 7


def for_stderr(text: str, level_no: int = logging.ERROR) -> str:
    """``text`` as a line written straight to stderr (the CLI's one-line ``Error: …``): with the
    priority prefix on every line when the logs go to the journal, unchanged otherwise."""
    if not _journal:
        return text
    prefix = f"<{syslog_priority(level_no)}>"
    return "\n".join(prefix + line for line in text.splitlines())


def stderr_is_journal(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """True when ``fd`` is the stream systemd connected to the journal: ``$JOURNAL_STREAM`` holds
    its ``device:inode`` (systemd.exec(5)). Compared, not just present: a child whose stderr was
    redirected elsewhere inherits the variable."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        found = os.fstat(fd)
    except OSError:
        return False
    return (found.st_dev, found.st_ino) == (int(device), int(inode))


class InterceptHandler(logging.Handler):
    """Route stdlib ``logging`` records into loguru (loguru README), keeping the caller's origin."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str = "INFO", json: bool = False, journal: bool | None = None) -> None:
    """Configure loguru and stdlib logging for the whole process; safe to call again.

    Args:
        level: loguru level name (TRACE, DEBUG, INFO, WARNING, ERROR).
        json: one JSON object per line (``serialize=True``) for other collectors.
        journal: priority prefixes and no timestamp; None detects it (``stderr_is_journal``).
    """
    if journal is None:
        journal = stderr_is_journal()
    global _handler_id, _journal
    level = level.upper()
    logger.configure(patcher=_redact_record)
    with _lock:
        if _handler_id is None:
            _remove_default_handler()
        else:
            logger.remove(_handler_id)
        options: dict[str, Any] = {"level": level, "diagnose": False, "backtrace": False, "colorize": False}
        sink = _RedactingStderr(journal=journal)
        _journal = journal
        if json:
            _handler_id = logger.add(sink, serialize=True, **options)
        else:
            _handler_id = logger.add(sink, format=_journal_format if journal else _format, **options)
    logging.basicConfig(handlers=[InterceptHandler()], level=logger.level(level).no, force=True)
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet)


def _remove_default_handler() -> None:
    # loguru installs handler 0 (stderr, diagnose=True) on import; other sinks (a test's) stay.
    # ValueError means someone removed it already, which is what we want.
    with contextlib.suppress(ValueError):
        logger.remove(0)
