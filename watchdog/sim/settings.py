"""Simulator settings, including the time scale that makes hours pass in seconds."""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.sim.market import DEFAULT_SYMBOLS

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "SimSettings"]

DEFAULT_API_KEY = "sim-key"
DEFAULT_API_SECRET = "sim-secret"


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Everything a simulator instance is started with.

    ``time_scale`` divides Binance's long durations (listen key 60 min, connection 24 h, ping
    every 3 min, pong window 10 min): with ``time_scale=3600`` a listen key lives 1 s and a
    connection 24 s. Explicit ``ping_interval_s``, ``pong_timeout_s``, ``listen_key_ttl_s`` and
    ``connection_max_age_s`` override the scaled values one by one.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    extra_accounts: tuple[tuple[str, str], ...] = ()
    dual_side: bool = False
    time_scale: float = 1.0
    ping_interval_s: float | None = None
    pong_timeout_s: float | None = None
    listen_key_ttl_s: float | None = None
    connection_max_age_s: float | None = None
    weight_limit: int = 2400
    # Whose weight one meter counts: "venue" (one meter for every client, as always), "peer"
    # (per client IP, Binance's rule), "dialled" (per simulator address the client connected
    # to: on loopback the kernel gives every client the source 127.0.0.1 whatever 127.x
    # address it dials, so a bench stands two hosts in by two dialled addresses).
    weight_key: str = "venue"
    extra_hosts: tuple[str, ...] = ()  # more addresses to listen on, same port (127.0.0.2)
    require_events_filter: bool = False
    history_ms: int = 600_000
    housekeeping_interval_s: float = 0.05
    accounts_wallet: str = "10000"
    mark_price_interval_s: float | None = None  # @markPrice@1s period; default 1 s / time_scale

    @property
    def listen_key_ttl_ms(self) -> int:
        if self.listen_key_ttl_s is not None:
            return max(1, int(self.listen_key_ttl_s * 1000))
        return max(1, int(3_600_000 / self.time_scale))

    @property
    def mark_price_interval_s_effective(self) -> float:
        """``@markPrice@1s`` period: 1 s divided by the time scale, never below 50 ms."""
        if self.mark_price_interval_s is not None:
            return self.mark_price_interval_s
        return max(0.05, 1.0 / self.time_scale)

    @property
    def max_connection_age_s(self) -> float:
        if self.connection_max_age_s is not None:
            return self.connection_max_age_s
        return 86_400 / self.time_scale

    @property
    def effective_ping_interval_s(self) -> float:
        return self.ping_interval_s if self.ping_interval_s is not None else 180 / self.time_scale

    @property
    def effective_pong_timeout_s(self) -> float:
        return self.pong_timeout_s if self.pong_timeout_s is not None else 600 / self.time_scale
