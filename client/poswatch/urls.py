"""Redis URL checks and redaction (PURE, standard library only: the daemon's config reads it too)."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["redact_url", "validate_redis_url"]

_SCHEMES = ("redis", "rediss", "unix")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for reprs, logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def validate_redis_url(url: str) -> str:
    """Return ``url`` if redis-py can use it, else raise ``ValueError`` with a one-line reason.

    Accepted: ``redis://[user:pass@]host[:port][/db]``, ``rediss://…`` (TLS) and
    ``unix:///path/to/redis.sock[?db=N]``. The daemon's config wraps the ``ValueError`` in a
    ``ConfigError``.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ValueError(f"malformed URL {redact_url(url)!r}: {exc}") from exc
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {redact_url(url)!r}")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError(f"unix:// URL needs a socket path (unix:///run/redis.sock), got {redact_url(url)!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{parts.scheme}:// URL needs a host, got {redact_url(url)!r}")
    return url
