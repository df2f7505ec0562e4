"""Configuration: one TOML file → frozen dataclasses, validated completely at startup.

Why so strict: a typo that silently falls back to a default is how a safety sidecar ends up
polling every 60 s instead of every 0.9 s. So unknown sections and keys are errors (with a
"did you mean"), types are exact (a bool is not an int; an int is accepted where a float is
expected), ranges and URL schemes are checked, and so are the relations between keys.
Every error is a ``ConfigError`` whose text is one line: ``PATH: [section] key: what is wrong``.

Secrets never live in the TOML; ``load_credentials`` reads them from the environment or from
systemd's ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``).

``config.example.toml`` at the repository root lists every key with its default; a test keeps
it equal to the dataclass defaults below.

Over 400 lines on purpose: the sections (every key with its default, bounds and why) and the
loader that checks them by that metadata are one contract with config.example.toml and
docs/CONFIG.md, read top to bottom; the credentials at the end are the other startup input.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from poswatch.urls import redact_url  # standard library only: one redaction rule, bots' and daemon's
from watchdog.binance.protocol.signing import Credentials
from watchdog.binance.protocol.weights import (
    ALL_SYMBOLS_WEIGHTS,
    IP_WEIGHT_LIMIT_PER_MIN,
    POSITIONS_WEIGHT,
    SWEEP_WEIGHT,
)
from watchdog.core.reaper import ReaperPolicy
from watchdog.errors import ConfigError, ConfigErrors

__all__ = [
    "SECTIONS",
    "AccountConfig",
    "BinanceConfig",
    "Config",
    "CoreConfig",
    "Credentials",
    "GuardConfig",
    "MetricsConfig",
    "ReaperConfig",
    "RedisConfig",
    "ServiceConfig",
    "StreamConfig",
    "VetoConfig",
    "account_configs",
    "calm_poll_interval_s",
    "load_account_credentials",
    "load_config",
    "load_credentials",
    "one_account",
    "parse_config",
    "parse_listen",
    "redact_url",
]

_T = TypeVar("_T")

# The sweep reads both order lists without a symbol, each at this weight (the config check names it).
_ALL_SYMBOLS_READ_WEIGHT = ALL_SYMBOLS_WEIGHTS["GET /fapi/v1/openOrders"]


def _key(default: _T, *, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, why: str = "",
         schemes: tuple[str, ...] = (), pattern: str = "") -> _T:
    """A config key: its default plus the checks the loader applies (kept as field metadata)."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "why": why, "schemes": schemes, "pattern": pattern}
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class BinanceConfig:
    """Where and how often to talk to Binance (or the simulator, on a loopback URL)."""

    rest_url: str = _key("https://fapi.binance.com", schemes=("http", "https"))
    ws_url: str = _key("wss://fstream.binance.com", schemes=("ws", "wss"))
    recv_window_ms: int = _key(5000, ge=1, le=60000, why="Binance rejects recvWindow above 60000")
    request_timeout_s: float = _key(5.0, gt=0, le=60)
    weight_budget_pct: int = _key(15, ge=1, le=100)
    # 0.9 s: with the stream muted, REST alone still sees a closure within ~1 s p95, while
    # positionRisk (weight 5) costs 60/0.9*5 = 333 weight/min, under 15% of Binance's 2400/min.
    poll_interval_s: float = _key(0.9, ge=0.05, le=60)
    # The routine positions poll while calm (docs/CONFIG.md: stream live and proven, no stop near
    # its trigger, no doubt or trading for 10 s): 2.0 s is 150 weight/min instead of 333. Used
    # as max(poll_interval_s, min(this, 2/3 of [veto] max_age_ms)) (``calm_poll_interval_s``).
    idle_poll_interval_s: float = _key(0.9, ge=0.05, le=60)
    orders_poll_interval_s: float = _key(5.0, ge=0.05, le=300)
    fast_poll_interval_s: float = _key(0.25, ge=0.05, le=60)
    # 600 s: both all-symbols order reads (weight 40 + 40) every 10 min cost 8 weight/min, taken
    # from the per-symbol order reads' share (360 - 334 positionRisk - 8 = 18/min left for them).
    orders_sweep_interval_s: float = _key(600.0, ge=60, le=3600)
    keepalive_interval_s: float = _key(1800.0, gt=0, le=1800,
                                       why="a listen key dies 60 min after its last keepalive; "
                                           "Binance recommends one every 30 min at most")
    rotate_after_s: float = _key(82800.0, gt=0, lt=86400,
                                 why="Binance cuts every connection at 24 h; rotate before that")
    max_silence_s: float = _key(200.0, gt=0, le=3600)
    reconnect_min_delay_s: float = _key(0.5, gt=0, le=60)
    reconnect_max_delay_s: float = _key(30.0, gt=0, le=600)


def calm_poll_interval_s(config: Config) -> float:
    """The positions poll's spacing while calm: ``idle_poll_interval_s``, but never faster than
    ``poll_interval_s`` and never past two thirds of ``[veto] max_age_ms``, so a calm position's
    ``verified_ms`` stays young enough for ``begin`` between two reads (no config that loaded
    before this key existed is refused because of it)."""
    b = config.binance
    return max(b.poll_interval_s, min(b.idle_poll_interval_s, config.veto.max_age_ms / 1500))


@dataclass(frozen=True, slots=True, repr=False)
class RedisConfig:
    """Where positions, health and events are published; ``repr`` hides a URL password."""

    url: str = _key("redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix"))
    account: str = _key("main", pattern=r"[A-Za-z0-9_-]{1,64}",
                        why="it is a Redis Cluster hash tag inside every key name")
    heartbeat_interval_s: float = _key(1.0, gt=0, le=60)
    health_ttl_ms: int = _key(5000, ge=100, le=600_000)
    events_maxlen: int = _key(10000, ge=100, le=10_000_000)
    closed_ttl_s: int = _key(86400, ge=1, le=30 * 86400)
    socket_timeout_s: float = _key(2.0, gt=0, le=60)
    # The account's leader lease (docs/HA.md): renewed every third of it; a standby takes over
    # about this long after a leader died. 1500 ms keeps takeover under 2 s p95.
    lead_ttl_ms: int = _key(1500, ge=300, le=60_000)
    # Redis Sentinel (docs/HA.md): the sentinels as "host:port"; the master is then found by
    # name and followed after a failover (the url gives credentials, db and TLS only).
    sentinels: tuple[str, ...] = _key((), pattern=r"\[?[A-Za-z0-9._:-]+\]?:[0-9]{1,5}")
    sentinel_master: str = _key("", pattern=r"[A-Za-z0-9._-]{0,64}")
    # Redis Cluster: url names one startup node; every key of an account is in one slot.
    cluster: bool = _key(False)

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments every Redis client of this config takes (Sentinel, Cluster or
        a plain server)."""
        return {"sentinels": self.sentinels, "sentinel_master": self.sentinel_master,
                "cluster": self.cluster}

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{f.name}={redact_url(self.url) if f.name == 'url' else getattr(self, f.name)!r}"
            for f in fields(self))
        return f"RedisConfig({parts})"


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """How old knowledge may get before it is unknown, and how far REST may lag the stream."""

    max_age_ms: int = _key(5000, ge=100, le=3_600_000)
    max_rest_lag_ms: int = _key(2000, ge=0, le=600_000)


@dataclass(frozen=True, slots=True)
class VetoConfig:
    """The veto protocol's freshness bar and lease length."""

    max_age_ms: int = _key(3000, ge=100, le=3_600_000)
    default_lease_ttl_ms: int = _key(5000, ge=100, le=600_000)


@dataclass(frozen=True, slots=True)
class ReaperConfig:
    """When a stop left behind by a closed position may be cancelled."""

    enabled: bool = _key(True)
    dry_run: bool = _key(False)
    grace_ms: int = _key(2000, ge=0, le=3_600_000)
    # Binance client ids match ^[.A-Z:/a-z0-9_-]{1,36}$ (docs/BINANCE.md §3.3): a prefix is shorter.
    client_id_prefix: str = _key("", pattern=r"[.A-Z:/a-z0-9_-]{0,35}")
    max_cancels_per_min: int = _key(20, ge=1, le=1200)
    stuck_triggering_s: float = _key(10.0, gt=0, le=3600)

    def policy(self, max_rest_lag_ms: int) -> ReaperPolicy:
        """The pure decision's policy: this section (validated by the loader) and ``[core]
        max_rest_lag_ms``."""
        return ReaperPolicy(grace_ms=self.grace_ms, client_id_prefix=self.client_id_prefix,
                            max_cancels_per_min=self.max_cancels_per_min,
                            stuck_triggering_ms=round(self.stuck_triggering_s * 1000),
                            dry_run=self.dry_run, max_rest_lag_ms=max_rest_lag_ms)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """The optional liveness proof of the user-data stream (core/canary.py, docs/CONFIG.md)."""

    # 0 = off. Each canary costs 1 on the account's order counts (0 IP weight) and its cancel
    # 1 IP weight: at 60 s, 1 of 1200 orders/min and 1 of 2400 weight/min.
    canary_interval_s: float = _key(0.0, ge=0, le=86400)
    canary_symbol: str = _key("", pattern=r"[A-Z0-9_]{0,40}")
    canary_timeout_s: float = _key(5.0, gt=0, le=60)


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Is every open position protected by a stop? The alert, and the opt-in last resort."""

    # 3 s: a bot's stop move is cancel + create, two REST round trips (tens to hundreds of ms);
    # the BASUSDT incident's took 1.4 s on a bad day. Twice that still flags a forgotten stop
    # within seconds without alerting on a slow but healthy replacement (docs/GUARD.md).
    unprotected_alert_ms: int = _key(3000, ge=0, le=3_600_000)
    # 0 = off. Else a closePosition STOP_MARKET this many % beyond the mark price.
    emergency_stop_pct: float = _key(0.0, ge=0, le=50)
    emergency_after_ms: int = _key(10_000, ge=0, le=3_600_000)
    # Placements + removals of last-resort stops in any 60 s (the account's order budget).
    max_orders_per_min: int = _key(6, ge=1, le=600)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """The daemon's own cadence (expiry checks, systemd keepalive)."""

    tick_interval_s: float = _key(0.25, ge=0.01, le=10)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus metrics: an HTTP endpoint on loopback and/or a node_exporter textfile.

    Both off by default: a second watchdog on the host (another account) would otherwise fight
    over one port, and a hardened host may want no listening socket at all (textfile instead).
    """

    listen: str = _key("")  # "HOST:PORT", e.g. "127.0.0.1:9731"; "" serves no endpoint
    allow_non_loopback: bool = _key(False)
    textfile_path: str = _key("")  # absolute, ending in .prom; "" writes no file
    textfile_interval_s: float = _key(15.0, ge=1, le=3600)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One account of several (``[[accounts]]``, docs/CONFIG.md): its Redis namespace and where
    its credentials are. Empty names take ``BINANCE_API_KEY_<NAME>`` / ``BINANCE_API_SECRET_<NAME>``
    (the name upper-cased, ``-`` as ``_``); the systemd credential files are always
    ``binance_api_key_<name>`` and ``binance_api_secret_<name>``."""

    name: str = _key("", pattern=r"[A-Za-z0-9_-]{1,64}",
                     why="it is the account's Redis namespace, like [redis] account")
    api_key_env: str = _key("", pattern=r"[A-Za-z_][A-Za-z0-9_]{0,127}|")
    api_secret_env: str = _key("", pattern=r"[A-Za-z_][A-Za-z0-9_]{0,127}|")

    def env_names(self) -> dict[str, str]:
        """The environment variables holding this account's key and secret."""
        suffix = self.name.upper().replace("-", "_")
        return {"api_key": self.api_key_env or f"BINANCE_API_KEY_{suffix}",
                "api_secret": self.api_secret_env or f"BINANCE_API_SECRET_{suffix}"}

    def file_names(self) -> dict[str, str]:
        """The ``$CREDENTIALS_DIRECTORY`` files holding them (systemd ``LoadCredential=``)."""
        return {"api_key": f"binance_api_key_{self.name}",
                "api_secret": f"binance_api_secret_{self.name}"}


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; every section always present (missing ones take defaults).

    ``accounts``: the ``[[accounts]]`` array; empty (the default) means one account, ``[redis]
    account``, with the unsuffixed credentials. ``account_configs`` gives one ``Config`` per
    account."""

    binance: BinanceConfig = field(default_factory=BinanceConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    veto: VetoConfig = field(default_factory=VetoConfig)
    reaper: ReaperConfig = field(default_factory=ReaperConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    accounts: tuple[AccountConfig, ...] = ()


def account_configs(config: Config) -> list[Config]:
    """One ``Config`` per account, each with its name as ``[redis] account`` and no
    ``accounts``: what one pipeline runs. A file without ``[[accounts]]`` gives itself."""
    if not config.accounts:
        return [config]
    return [dataclasses.replace(config, accounts=(),
                                redis=dataclasses.replace(config.redis, account=a.name))
            for a in config.accounts]


def one_account(config: Config, name: str = "") -> Config:
    """The one account a reading command (status, check, events, orphans) looks at: the file's
    only account, or ``name`` among its ``[[accounts]]`` (``status --account``). Raises
    ConfigError when ``[[accounts]]`` lists several and no name picks one (it would otherwise
    read ``[redis] account``'s default, an account nobody runs), or ``name`` is not listed."""
    configs = account_configs(config)
    if name:
        picked = [c for c in configs if c.redis.account == name]
        if not picked:
            raise ConfigError("config", "accounts", name, "no such account in this file: "
                              f"{', '.join(c.redis.account for c in configs)}")
        return picked[0]
    if len(configs) > 1:
        raise ConfigError("config", "accounts", "", f"{len(configs)} accounts are listed and this "
                          "command reads one: give it a config file with [redis] account = NAME")
    return configs[0]


SECTIONS: dict[str, type[Any]] = {f.name: f.default_factory for f in fields(Config)  # type: ignore[misc]
                                  if f.name != "accounts"}
_SECRET_NAMES = frozenset({"apikey", "apisecret", "secret", "secretkey", "apisecretkey"})
_SECRETS_HELP = ("secrets do not belong in the config file; set BINANCE_API_KEY/BINANCE_API_SECRET "
                 "or systemd LoadCredential= binance_api_key/binance_api_secret")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at ``path``.

    Raises:
        ConfigError: unreadable file, TOML syntax error, or any invalid value; the message is one
            line naming file, section and key.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(name, "", "", f"cannot read the file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(name, "", "", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(name, text, exc) from exc
    return parse_config(data, name)


def parse_config(data: Mapping[str, Any], path: str) -> Config:
    """Validate an already-parsed TOML document; ``path`` only names it in errors.

    Every problem is found before raising: one problem raises its ``ConfigError``, several a
    ``ConfigErrors`` listing all of them (an operator fixes the file once, not once per error).
    """
    found: list[ConfigError] = []
    _reject_secrets(data, path, "", found)
    for name, value in data.items():
        if name == "accounts":
            continue  # an array of tables, read by _build_accounts
        if name not in SECTIONS:
            if not isinstance(value, dict):
                home = [s for s, cls in SECTIONS.items() if name in _field_names(cls)]
                hint = f"; it belongs under [{home[0]}]" if home else ""
                found.append(ConfigError(path, "", name, f"key outside any section{hint}"))
            else:
                found.append(ConfigError(path, name, "",
                                         f"unknown section{_suggest(name, SECTIONS, '[{}]')}"))
        elif not isinstance(value, dict):
            found.append(ConfigError(path, name, "",
                                     f"expected a table [{name}], got {_type_name(value)}"))
    built = {name: _build_section(path, name, cls,
                                  table if isinstance(table := data.get(name, {}), dict) else {},
                                  found)
             for name, cls in SECTIONS.items()}
    config = Config(**built, accounts=_build_accounts(path, data, found))
    # A relation is judged only between keys that are themselves valid (a bad key took its
    # default above, and a relation with a default would name the wrong culprit).
    bad = {(e.section, e.key) for e in found} | {(e.section, "") for e in found}
    _check_relations(config, path, found, bad)
    _check_metrics(config, path, found, bad)
    _check_accounts(config, data, path, found)
    if len(found) == 1:
        raise found[0]
    if found:
        raise ConfigErrors(found)
    return config


def _build_section(path: str, section: str, cls: type[_T], table: Mapping[str, Any],
                   found: list[ConfigError]) -> _T:
    hints = typing.get_type_hints(cls)
    known = _field_names(cls)
    for key in table:
        if key not in known and not _is_secret_name(key):
            elsewhere = [s for s, other in SECTIONS.items() if s != section and key in _field_names(other)]
            hint = f"; it belongs under [{elsewhere[0]}]" if elsewhere else _suggest(key, known, "'{}'")
            found.append(ConfigError(path, section, key, f"unknown key{hint}"))
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in table:
            try:
                values[f.name] = _check_value(path, section, f.name, hints[f.name], table[f.name],
                                              f.metadata)
            except ConfigError as exc:
                found.append(exc)
    return cls(**values)


def _build_accounts(path: str, data: Mapping[str, Any],
                    found: list[ConfigError]) -> tuple[AccountConfig, ...]:
    """``[[accounts]]``: an array of tables, each checked like a section (``accounts[i]``)."""
    if "accounts" not in data:
        return ()
    items = data["accounts"]
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        found.append(ConfigError(path, "accounts", "", "expected an array of tables [[accounts]], "
                                 f"got {_type_name(items)}"))
        return ()
    built = []
    for i, item in enumerate(items):
        section = f"accounts[{i}]"
        if "name" not in item:
            found.append(ConfigError(path, section, "name", "missing: every account needs a name "
                                     "(its Redis namespace)"))
            continue
        built.append(_build_section(path, section, AccountConfig, item, found))
    return tuple(built)


def _check_accounts(config: Config, data: Mapping[str, Any], path: str,
                    found: list[ConfigError]) -> None:
    """Several accounts: distinct names, ``[redis] account`` not given beside them, and no
    ``[metrics]`` export (one port or file per process, not yet per account)."""
    if "accounts" not in data or not isinstance(data["accounts"], list):
        return
    if not data["accounts"]:
        found.append(ConfigError(path, "accounts", "", "an empty [[accounts]] array: list at least "
                                 "one account, or drop it and use [redis] account"))
        return
    names = [a.name for a in config.accounts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        found.append(ConfigError(path, "accounts", "name", f"{twice[0]!r} is listed twice: each "
                                 "account's name is its own Redis namespace"))
    redis = data.get("redis")
    if isinstance(redis, dict) and "account" in redis:
        found.append(ConfigError(path, "redis", "account", "give either [redis] account (one "
                                 "account) or [[accounts]] (several), not both"))
    if config.metrics.listen or config.metrics.textfile_path:
        found.append(ConfigError(path, "metrics", "listen" if config.metrics.listen else
                                 "textfile_path", "[metrics] exports one account per process: "
                                 "not available with [[accounts]] yet (run one process per "
                                 "account to export metrics)"))


def _check_value(path: str, section: str, key: str, kind: type, value: Any,
                 meta: Mapping[str, Any]) -> Any:
    def fail(problem: str) -> ConfigError:
        return ConfigError(path, section, key, problem)

    shown = _show(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise fail(f"expected true or false, got {shown} ({_type_name(value)})")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"expected an integer, got {shown} ({_type_name(value)})")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"expected a number, got {shown} ({_type_name(value)})")
        value = float(value)
        if not math.isfinite(value):
            raise fail(f"expected a finite number, got {shown}")
    elif typing.get_origin(kind) is tuple:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise fail(f"expected a list of strings, got {shown} ({_type_name(value)})")
        bad = [item for item in value if meta["pattern"] and not re.fullmatch(meta["pattern"], item)]
        if bad:
            raise fail(f"expected host:port entries, got {_show(bad[0])}" + _why(meta))
        return tuple(value)
    elif kind is str:
        if not isinstance(value, str):
            raise fail(f"expected a string, got {shown} ({_type_name(value)})")
        if meta["schemes"]:
            value = _check_url(value, meta["schemes"], fail)
        if meta["pattern"] and not re.fullmatch(meta["pattern"], value):
            raise fail(f"must match {meta['pattern']}, got {shown}" + _why(meta))
        return value
    for bound, ok, word in (("ge", float.__ge__, ">="), ("gt", float.__gt__, ">"),
                            ("le", float.__le__, "<="), ("lt", float.__lt__, "<")):
        limit = meta[bound]
        if limit is not None and not ok(float(value), float(limit)):
            raise fail(f"must be {word} {limit:g}, got {value!r}" + _why(meta))
    return value


def _check_url(value: str, schemes: tuple[str, ...], fail: Any) -> str:
    parts = urlsplit(value)
    expected = " or ".join(f"{s}://" for s in schemes)
    if parts.scheme not in schemes:
        raise fail(f"expected a {expected} URL, got {_show(redact_url(value))}")
    if parts.scheme == "unix":
        if not parts.path:
            raise fail(f"a unix:// URL needs a socket path, got {_show(value)}")
        return value
    if not parts.hostname:
        raise fail(f"the URL has no host: {_show(redact_url(value))}")
    if parts.scheme in ("redis", "rediss"):
        return value
    if parts.query or parts.fragment or parts.path not in ("", "/") or parts.username:
        raise fail(f"expected a bare base URL like {schemes[-1]}://host[:port], got {_show(value)}")
    return value.rstrip("/")


def parse_listen(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:PORT"`` for IPv6) → (host, port).

    Raises:
        ValueError: not of that shape, or the port is outside 1-65535 (says which).
    """
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.-]+):(\d{1,5})", value)
    if match is None:
        raise ValueError(f'expected "HOST:PORT" (IPv6 as "[::1]:PORT"), got {_show(value)}')
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be 1-65535, got {port}")
    return host, port


def _is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback IP literal (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def _check_metrics(config: Config, path: str, found: list[ConfigError],
                   bad: set[tuple[str, str]]) -> None:
    """``[metrics]``: the endpoint is on loopback unless allowed, the textfile path is usable.
    Keys already reported in ``bad`` (wrong type) are not judged again."""
    m = config.metrics
    if m.listen and not {("metrics", "listen"), ("metrics", "")} & bad:
        try:
            host, _port = parse_listen(m.listen)
        except ValueError as exc:
            found.append(ConfigError(path, "metrics", "listen", str(exc)))
        else:
            if not _is_loopback(host) and not m.allow_non_loopback:
                found.append(ConfigError(
                    path, "metrics", "listen",
                    f"{host} is not a loopback address: the metrics show positions and health to "
                    "anyone who can connect; use 127.0.0.1 or ::1, or set allow_non_loopback = "
                    "true and firewall the port"))
    if (m.textfile_path and not {("metrics", "textfile_path"), ("metrics", "")} & bad
            and (not m.textfile_path.startswith("/") or not m.textfile_path.endswith(".prom"))):
        found.append(ConfigError(path, "metrics", "textfile_path",
                                 "expected an absolute path ending in .prom (node_exporter's "
                                 f"textfile collector reads only *.prom), got {_show(m.textfile_path)}"))


def _check_relations(config: Config, path: str, found: list[ConfigError],
                     bad: set[tuple[str, str]]) -> None:
    """Checks that involve two keys; the error names the key an operator most likely changes.
    A check is skipped when one of its keys (or its section) is already reported in ``bad``."""
    b, r = config.binance, config.redis

    def check(ok: bool, keys: tuple[tuple[str, str], ...], section: str, key: str,
              problem: str) -> None:
        if ok or any(k in bad or (k[0], "") in bad for k in keys):
            return
        found.append(ConfigError(path, section, key, problem))

    check(r.heartbeat_interval_s * 1000 < r.health_ttl_ms,
          (("redis", "heartbeat_interval_s"), ("redis", "health_ttl_ms")), "redis", "health_ttl_ms",
          f"must exceed heartbeat_interval_s ({r.heartbeat_interval_s:g} s), "
          f"or health expires between heartbeats; got {r.health_ttl_ms} ms")
    check(bool(r.sentinels) == bool(r.sentinel_master),
          (("redis", "sentinels"), ("redis", "sentinel_master")), "redis", "sentinel_master",
          "sentinels and sentinel_master go together: give both (Redis Sentinel) or neither; got "
          f"{len(r.sentinels)} sentinel(s) and master {r.sentinel_master!r}")
    check(not (r.cluster and r.sentinels), (("redis", "cluster"), ("redis", "sentinels")),
          "redis", "cluster", "cluster = true and sentinels exclude each other: a Redis Cluster "
          "fails over by itself")
    check(config.veto.max_age_ms <= config.core.max_age_ms,
          (("veto", "max_age_ms"), ("core", "max_age_ms")), "veto", "max_age_ms",
          f"must be <= [core] max_age_ms ({config.core.max_age_ms}): the veto "
          f"cannot trust what the core already calls unknown; got {config.veto.max_age_ms}")
    g = config.guard
    check(g.emergency_stop_pct == 0 or g.emergency_after_ms >= g.unprotected_alert_ms,
          (("guard", "emergency_after_ms"), ("guard", "unprotected_alert_ms"),
           ("guard", "emergency_stop_pct")), "guard", "emergency_after_ms",
          f"must be >= unprotected_alert_ms ({g.unprotected_alert_ms} ms): the operator hears "
          f"of an unprotected position before the watchdog acts; got {g.emergency_after_ms}")
    check(b.reconnect_min_delay_s <= b.reconnect_max_delay_s,
          (("binance", "reconnect_min_delay_s"), ("binance", "reconnect_max_delay_s")),
          "binance", "reconnect_min_delay_s",
          f"must be <= reconnect_max_delay_s ({b.reconnect_max_delay_s:g}); "
          f"got {b.reconnect_min_delay_s:g}")
    check(b.poll_interval_s * 1000 < config.core.max_age_ms,
          (("binance", "poll_interval_s"), ("core", "max_age_ms")), "binance", "poll_interval_s",
          f"must be shorter than [core] max_age_ms ({config.core.max_age_ms} ms), or a "
          f"quiet position expires between polls; got {b.poll_interval_s:g} s")
    st = config.stream
    check(not (st.canary_interval_s > 0 and not st.canary_symbol),
          (("stream", "canary_interval_s"), ("stream", "canary_symbol")), "stream", "canary_symbol",
          "must name a symbol (e.g. BTCUSDT) when canary_interval_s > 0")
    check(not (0 < st.canary_interval_s <= 2 * st.canary_timeout_s),
          (("stream", "canary_interval_s"), ("stream", "canary_timeout_s")), "stream",
          "canary_interval_s",
          f"must be 0 (off) or more than twice canary_timeout_s "
          f"({st.canary_timeout_s:g} s), one canary at a time; "
          f"got {st.canary_interval_s:g}")
    # The simulator (a loopback URL, any of 127.0.0.0/8: a bench's second "host" is
    # 127.0.0.2) has no weight limit; Binance's is shared with the bot.
    if ("binance", "rest_url") in bad or _is_loopback(urlsplit(b.rest_url).hostname or ""):
        return
    # Several accounts share one budget per IP (docs/CONFIG.md, [[accounts]]).
    accounts = max(1, len(config.accounts))
    per_min = 60 / b.poll_interval_s * POSITIONS_WEIGHT * accounts
    budget = IP_WEIGHT_LIMIT_PER_MIN * b.weight_budget_pct / 100
    budget_keys = (("binance", "poll_interval_s"), ("binance", "weight_budget_pct"))
    check(per_min <= budget, budget_keys, "binance", "poll_interval_s",
          f"{b.poll_interval_s:g} s costs {per_min:.0f} weight/min in positionRisk "
          f"alone{f' for {accounts} accounts on one IP' if accounts > 1 else ''}, over "
          f"weight_budget_pct {b.weight_budget_pct}% of {IP_WEIGHT_LIMIT_PER_MIN} "
          f"({budget:.0f}); raise the interval or the budget")
    if per_min > budget:
        return  # the sweep's share cannot be judged while the poll alone is over
    sweep_per_min = 60 / b.orders_sweep_interval_s * SWEEP_WEIGHT * accounts
    check(per_min + sweep_per_min <= budget,
          (*budget_keys, ("binance", "orders_sweep_interval_s")), "binance",
          "orders_sweep_interval_s",
          f"{b.orders_sweep_interval_s:g} s costs {sweep_per_min:.0f} weight/min "
          f"(two all-symbols reads of weight {_ALL_SYMBOLS_READ_WEIGHT}), over "
          f"weight_budget_pct {b.weight_budget_pct}% of {IP_WEIGHT_LIMIT_PER_MIN} "
          f"({budget:.0f}) together with "
          f"positionRisk ({per_min:.0f}); raise the interval or the budget")


def _is_secret_name(key: str) -> bool:
    return key.lower().replace("_", "").replace("-", "") in _SECRET_NAMES


def _reject_secrets(data: Mapping[str, Any], path: str, section: str,
                    found: list[ConfigError]) -> None:
    for key, value in data.items():
        if _is_secret_name(key):
            found.append(ConfigError(path, section, key, _SECRETS_HELP))
        elif isinstance(value, dict):
            _reject_secrets(value, path, f"{section}.{key}" if section else key, found)
        elif isinstance(value, list):  # [[accounts]]: an array of tables
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _reject_secrets(item, path, f"{key}[{i}]", found)


def _syntax_error(path: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """Name the section and key around the line tomllib complains about, when it can."""
    # Python 3.11's TOMLDecodeError has no lineno/colno attributes: read them from the message.
    match = re.search(r"line (\d+), column (\d+)", str(exc))
    lineno = int(match.group(1)) if match else 0
    colno = int(match.group(2)) if match else 0
    section, key = "", ""
    if lineno:
        lines = text.splitlines()
        for line in lines[:lineno]:
            header = re.match(r"\s*\[+\s*([^\]]+?)\s*\]", line)
            if header:
                section = header.group(1)
        here = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        assignment = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", here)
        key = assignment.group(1) if assignment else ""
    where = f"line {lineno}, column {colno}" if lineno else "an unknown line"
    msg = re.sub(r" \(at .*\)$", "", str(exc))
    return ConfigError(path, section, key, f"TOML syntax error at {where}: {msg}")


def _field_names(cls: type[Any]) -> list[str]:
    return [f.name for f in fields(cls)]


def _suggest(word: str, known: typing.Iterable[str], fmt: str) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {fmt.format(close[0])}?" if close else ""


def _why(meta: Mapping[str, Any]) -> str:
    return f" ({meta['why']})" if meta["why"] else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), "date/time")


# ---------------------------------------------------------------- credentials

_ENV = {"api_key": "BINANCE_API_KEY", "api_secret": "BINANCE_API_SECRET"}
_FILES = {"api_key": "binance_api_key", "api_secret": "binance_api_secret"}
_CREDENTIALS_HELP = ("set BINANCE_API_KEY and BINANCE_API_SECRET in the environment, or give systemd "
                     "LoadCredential=binance_api_key:/etc/… and LoadCredential=binance_api_secret:/etc/… "
                     "(files in $CREDENTIALS_DIRECTORY)")


def load_credentials(environ: Mapping[str, str] | None = None, *,
                     account: AccountConfig | None = None) -> Credentials:
    """Read the API key and secret: environment first, then ``$CREDENTIALS_DIRECTORY`` files.
    ``account``: one of ``[[accounts]]`` (its own variable and file names); else the one
    account's ``BINANCE_API_KEY``/``BINANCE_API_SECRET``.

    Raises:
        ConfigError: a value is missing, empty, unreadable or contains whitespace; the message says
            how to provide it (and never contains the value).
    """
    env = os.environ if environ is None else environ
    env_names = _ENV if account is None else account.env_names()
    file_names = _FILES if account is None else account.file_names()
    section = "binance" if account is None else f"accounts {account.name}"
    help_text = _CREDENTIALS_HELP if account is None else (
        f"set {env_names['api_key']} and {env_names['api_secret']} in the environment, or "
        f"systemd LoadCredential={file_names['api_key']}:… and {file_names['api_secret']}:…")
    found: dict[str, str] = {}
    for name, var in env_names.items():
        value, source = env.get(var, "").strip(), var
        if not value and env.get("CREDENTIALS_DIRECTORY"):
            file = Path(env["CREDENTIALS_DIRECTORY"]) / file_names[name]
            source = str(file)
            try:
                value = file.read_text(encoding="utf-8").strip() if file.exists() else ""
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError("credentials", section, name,
                                  f"cannot read {file}: {exc.__class__.__name__}") from exc
        if not value:
            raise ConfigError("credentials", section, name, f"not found; {help_text}")
        if not value.isascii() or any(c.isspace() or not c.isprintable() for c in value):
            raise ConfigError("credentials", section, name,
                              f"the value from {source} contains whitespace or control characters")
        found[name] = value
    return Credentials(api_key=found["api_key"], api_secret=found["api_secret"])


def load_account_credentials(config: Config, environ: Mapping[str, str] | None = None,
                             ) -> dict[str, Credentials]:
    """Each account's credentials by account name (``load_credentials`` for each; one account
    without ``[[accounts]]`` reads the unsuffixed names). Raises ConfigError as it does."""
    if not config.accounts:
        return {config.redis.account: load_credentials(environ)}
    return {a.name: load_credentials(environ, account=a) for a in config.accounts}
