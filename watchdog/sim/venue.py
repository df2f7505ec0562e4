"""The running simulator's state: the model, the stream hub, faults, limits and the clock.

Shared by the REST, stream and control routes (one object under one ``AppKey``). The clock is
wall time plus the ``clock_skew_ms`` fault; the model reads it through ``now_ms``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from aiohttp import web

from watchdog.sim.auth import OrderCounter, WeightMeter
from watchdog.sim.exchange import SimExchange
from watchdog.sim.faults import Faults, RestErrors, apply_faults
from watchdog.sim.hub import StreamHub
from watchdog.sim.market import default_specs
from watchdog.sim.market_hub import MarketHub
from watchdog.sim.settings import SimSettings

__all__ = ["VENUE", "Venue"]


class Venue:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.faults = Faults()
        self.hub = StreamHub(require_events_filter=settings.require_events_filter)
        self.market = MarketHub()
        self.exchange = self._new_exchange()
        self.weights = WeightMeter(limit=settings.weight_limit)
        self.weights_by_ip: dict[str, WeightMeter] = {}  # settings.weight_key "peer"/"dialled"
        # Sees every charged request: (ip as metered, method path, API key or "", weight).
        self.on_charge: Callable[[str, str, str, int], None] | None = None
        self.order_counter = OrderCounter()
        self.started_at = time.monotonic()

    def meter(self, ip: str) -> WeightMeter:
        """The weight meter of ``ip`` (settings.weight_key); the one ``weights`` for "venue"."""
        if self.settings.weight_key == "venue":
            return self.weights
        if ip not in self.weights_by_ip:
            self.weights_by_ip[ip] = WeightMeter(limit=self.settings.weight_limit)
        return self.weights_by_ip[ip]

    def _new_exchange(self) -> SimExchange:
        s = self.settings
        exchange = SimExchange(default_specs(list(s.symbols)), now_ms=self.now_ms,
                               listen_key_ttl_ms=s.listen_key_ttl_ms, history_ms=s.history_ms,
                               wall_ms=lambda: int(time.time() * 1000))
        for key, secret in ((s.api_key, s.api_secret), *s.extra_accounts):
            exchange.add_account(key, secret, wallet=Decimal(s.accounts_wallet), dual_side=s.dual_side)
        return exchange

    def now_ms(self) -> int:
        """The exchange clock (ms): wall time shifted by the ``clock_skew_ms`` fault."""
        return int(time.time() * 1000) + self.faults.clock_skew_ms

    def flush(self) -> None:
        """Hand every event the model produced to the stream hubs, in order."""
        now = asyncio.get_running_loop().time()
        prints, self.exchange.market_outbox = self.exchange.market_outbox, []
        if prints:
            self.market.publish(self.exchange.specs, prints, self.now_ms())
        outbox, self.exchange.outbox = self.exchange.outbox, []
        for item in outbox:
            account = self.exchange.accounts.get(item.api_key)
            self.hub.dispatch(item, account.listen_key if account else None, now)

    def housekeeping(self) -> None:
        """Periodic: expire listen keys (→ listenKeyExpired) and deliver what that produced."""
        self.exchange.expire_listen_keys()
        self.flush()

    def set_faults(self, doc: dict[str, Any]) -> list[str]:
        before = self.faults.stream
        self.faults, actions = apply_faults(self.faults, doc)
        self.hub.faults = self.faults
        if self.faults.stream != "mute_new":
            self.hub.mute_new_after = None
        elif before != "mute_new":  # set now: connections opened from here on are muted
            self.hub.mute_new_after = self.hub.last_id
        self.exchange.stuck_triggering = self.faults.stuck_triggering
        if not self.faults.reorder_events:
            self.hub.release_held()
        if "disconnect" in actions:
            self.hub.drop_all()
        self.market.mode = self.faults.market
        if "market_disconnect" in actions:
            self.market.drop_all()
        return actions

    def clear_faults(self) -> None:
        self.faults = Faults()
        self.hub.faults = self.faults
        self.hub.mute_new_after = None
        self.exchange.stuck_triggering = False
        self.market.mode = "normal"
        self.hub.release_held()

    def take_rest_error(self) -> tuple[int, int | None, str | None] | None:
        """Consume one injected REST failure, if any are left."""
        return self._take("rest_errors")

    def take_handshake_error(self) -> tuple[int, int | None, str | None] | None:
        """Consume one injected user-stream handshake refusal, if any are left."""
        return self._take("ws_handshake_errors")

    def _take(self, name: str) -> tuple[int, int | None, str | None] | None:
        plan: RestErrors | None = getattr(self.faults, name)
        if plan is None or plan.count <= 0:
            return None
        left: dict[str, Any] = {name: None if plan.count == 1 else replace(plan, count=plan.count - 1)}
        self.faults = replace(self.faults, **left)
        self.hub.faults = self.faults
        return plan.status, plan.code, plan.msg

    def reset(self) -> None:
        """Back to the start: fresh accounts/prices/keys, no faults, counters zeroed, streams cut."""
        self.clear_faults()
        self.hub.drop_all()
        self.market.drop_all()
        self.hub.sent.clear()
        self.hub.dropped.clear()
        self.exchange = self._new_exchange()
        self.weights = WeightMeter(limit=self.settings.weight_limit)
        self.weights_by_ip.clear()
        self.order_counter = OrderCounter()


VENUE: web.AppKey[Venue] = web.AppKey("venue", Venue)
