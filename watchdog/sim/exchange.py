"""SimExchange: the pure model of a Binance USDⓈ-M venue. No I/O.

Rules of this module:
1. Time comes only from the injected ``now_ms`` callable; the model never reads a clock.
2. Every mutation updates REST-visible state *and* appends the stream events it causes to
   :attr:`SimExchange.outbox`, in one step, in the order Binance shows them (docs/BINANCE.md §3.5):
   ALGO_UPDATE TRIGGERING → TRIGGERED (``ai`` = child) → child ORDER_TRADE_UPDATE NEW (``c`` =
   clientAlgoId) → TRADE_LITE → ORDER_TRADE_UPDATE TRADE → ACCOUNT_UPDATE → ALGO_UPDATE FINISHED.
3. Refusals raise :class:`~watchdog.sim.rejections.Rejection` before anything changes.
4. After each mutation a frozen :class:`AccountView` is kept (bounded by ``history_ms``) so REST
   can answer "as it was ``lag_ms`` ago" (Binance's REST lag, fault ``rest_lag_ms``), and the
   :class:`~watchdog.sim.journal.Journal` records what changed (``GET /sim/v1/history``).
"""

from __future__ import annotations

import copy
import hashlib
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from watchdog.sim import events as ev
from watchdog.sim import rejections as rj
from watchdog.sim.account import Account, AccountView
from watchdog.sim.journal import Journal
from watchdog.sim.market import SymbolSpec
from watchdog.sim.matching import MarketPrint, Matching, Outgoing
from watchdog.sim.orders import AlgoOrder, Order, would_trigger
from watchdog.sim.requests import NewAlgo, NewOrder, Params, parse_new_algo, parse_new_order

__all__ = ["MarketPrint", "Outgoing", "SimExchange"]

LISTEN_KEY_TTL_MS = 60 * 60 * 1000  # "valid for 60 minutes" (docs/BINANCE.md §1.1)
ALGO_CAP = 200  # "The condtional order limits is 200 across all symbols" (2025-12-29)


class SimExchange(Matching):
    """Accounts, prices, orders, algo orders and listen keys; see the module rules."""

    def __init__(self, specs: list[SymbolSpec], *, now_ms: Callable[[], int],
                 listen_key_ttl_ms: int = LISTEN_KEY_TTL_MS, history_ms: int = 600_000,
                 algo_cap: int = ALGO_CAP, taker_fee: Decimal = Decimal("0.0005"),
                 maker_fee: Decimal = Decimal("0.0002"), seed: str = "sim",
                 wall_ms: Callable[[], int] | None = None) -> None:
        self.specs = {spec.symbol: spec for spec in specs}
        self.now_ms = now_ms
        # The host's clock without the clock_skew_ms fault, for the journal (GET /sim/v1/history).
        self.wall_ms = wall_ms if wall_ms is not None else now_ms
        self.journal = Journal()
        self.listen_key_ttl_ms = listen_key_ttl_ms
        self.history_ms = history_ms
        self.algo_cap = algo_cap
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.seed = seed
        self.mark = {spec.symbol: spec.price for spec in specs}
        self.last = {spec.symbol: spec.price for spec in specs}
        self.accounts: dict[str, Account] = {}
        self.outbox: list[Outgoing] = []
        self.market_outbox: list[MarketPrint] = []  # public prints for the market streams
        self._history: dict[str, deque[AccountView]] = {}
        self._next_order_id = 88_937_381_000
        self._next_algo_id = 1_000_000_033_225_000
        self._next_trade_id = 4_467_432_000
        self._next_key = 0
        self._next_client = 0
        self.stuck_triggering = False  # fault: triggers never leave TRIGGERING (docs/BINANCE.md §3.6)

    # ------------------------------------------------------------------ accounts

    def add_account(self, api_key: str, api_secret: str, *, wallet: Decimal = Decimal(10_000),
                    dual_side: bool = False) -> Account:
        account = Account(api_key, api_secret, wallet, dual_side)
        self.accounts[api_key] = account
        self._history[api_key] = deque()
        self._commit(account)
        return account

    def account(self, api_key: str) -> Account:
        return self.accounts[api_key]

    def view(self, api_key: str, lag_ms: int = 0) -> AccountView:
        """REST-visible state now, or as it was ``lag_ms`` ago (oldest kept view at worst)."""
        account = self.accounts[api_key]
        now = self.now_ms()
        if lag_ms <= 0:
            return account.view(now, self.mark)
        cutoff = now - lag_ms
        history = self._history[api_key]
        chosen = history[0]
        for view in history:
            if view.time_ms > cutoff:
                break
            chosen = view
        return chosen

    def set_dual_side(self, api_key: str, dual_side: bool) -> None:
        account = self.accounts[api_key]
        if account.dual_side == dual_side:
            raise rj.Rejection(-4059, "No need to change position side.")
        if any(p.amount for p in account.positions.values()):
            raise rj.Rejection(-4068, "Position side cannot be changed if there exists position.")
        if account.open_orders() or account.open_algos():
            raise rj.Rejection(-4067, "Position side cannot be changed if there exists open orders.")
        account.dual_side = dual_side
        account.positions.clear()
        self._commit(account)

    def set_leverage(self, api_key: str, symbol: str, leverage: int) -> None:
        if symbol not in self.specs:
            raise rj.invalid_symbol()
        if not 1 <= leverage <= 125:
            raise rj.Rejection(-4028, "Leverage is not valid")
        account = self.accounts[api_key]
        account.leverage[symbol] = leverage
        now = self.now_ms()
        self.outbox.append(Outgoing(api_key, {"e": "ACCOUNT_CONFIG_UPDATE", "E": now, "T": now,
                                              "ac": {"s": symbol, "l": leverage}}))
        self._commit(account)

    # ------------------------------------------------------------------ listen keys

    def create_listen_key(self, api_key: str) -> str:
        """POST: the account's one active key (extended), or a new one."""
        self.expire_listen_keys()
        account = self.accounts[api_key]
        if account.listen_key is None:
            self._next_key += 1
            raw = f"{self.seed}:{api_key}:{self._next_key}".encode()
            account.listen_key = hashlib.sha256(raw).hexdigest()
        account.listen_key_expires_ms = self.now_ms() + self.listen_key_ttl_ms
        return account.listen_key

    def keepalive_listen_key(self, api_key: str) -> str:
        """PUT: extend by 60 min, or -1125 when the account has no live key."""
        self.expire_listen_keys()
        account = self.accounts[api_key]
        if account.listen_key is None:
            raise rj.invalid_listen_key()
        account.listen_key_expires_ms = self.now_ms() + self.listen_key_ttl_ms
        return account.listen_key

    def close_listen_key(self, api_key: str) -> str | None:
        """DELETE: invalidate (no listenKeyExpired: the stream is closed normally)."""
        self.expire_listen_keys()
        account = self.accounts[api_key]
        key, account.listen_key = account.listen_key, None
        return key

    def account_for_listen_key(self, listen_key: str) -> str | None:
        self.expire_listen_keys()
        for account in self.accounts.values():
            if account.listen_key is not None and account.listen_key == listen_key:
                return account.api_key
        return None

    def expire_listen_keys(self) -> list[str]:
        """Expire keys past their deadline; each gets a ``listenKeyExpired`` on its streams."""
        now = self.now_ms()
        expired = []
        for account in self.accounts.values():
            if account.listen_key is not None and account.listen_key_expires_ms <= now:
                key, account.listen_key = account.listen_key, None
                self.outbox.append(Outgoing(account.api_key, ev.listen_key_expired(key, now), key))
                expired.append(key)
        return expired

    def force_expire_listen_key(self, api_key: str) -> None:
        """Control API: expire the account's key now (listenKeyExpired as at the deadline)."""
        account = self.accounts[api_key]
        if account.listen_key is not None:
            account.listen_key_expires_ms = self.now_ms()
            self.expire_listen_keys()

    # ------------------------------------------------------------------ regular orders

    def place_order(self, api_key: str, params: Params) -> Order:
        """``POST /fapi/v1/order``; returns the order as the response shows it (ACK or RESULT)."""
        account = self.accounts[api_key]
        req = parse_new_order(params, self.specs, account.dual_side)
        return self._place(account, req, check_notional=True)

    def market_fill(self, api_key: str, symbol: str, side: str, qty: Decimal,
                    position_side: str | None, *, parts: int = 1) -> Order:
        """Control API ``/sim/v1/fills``: a MARKET trade with every event it causes."""
        account = self.accounts[api_key]
        params = {"symbol": symbol, "side": side, "type": "MARKET", "quantity": f"{qty:f}",
                  "newOrderRespType": "RESULT"}
        if position_side is not None:
            params["positionSide"] = position_side
        self._next_client += 1
        params["newClientOrderId"] = f"sim_fill_{self._next_client}"
        req = parse_new_order(params, self.specs, account.dual_side)
        return self._place(account, req, check_notional=False, parts=parts)

    def _place(self, account: Account, req: NewOrder, *, check_notional: bool, parts: int = 1) -> Order:
        spec = self.specs[req.symbol]
        reducing = req.reduce_only or self._is_close(req.position_side, req.side)
        qty = req.qty
        if reducing:
            closable = self._closable(account, req.symbol, req.position_side, req.side)
            if closable == 0 or (self._is_close(req.position_side, req.side) and qty > closable):
                raise rj.reduce_only_rejected()
        ref_price = req.price if req.type == "LIMIT" else self.last[req.symbol]
        if check_notional and not reducing and qty * ref_price < spec.min_notional:
            raise rj.min_notional(f"{spec.min_notional:f}")
        client_id = req.client_id or self._client_id()
        if any(o.client_id == client_id for o in account.open_orders()):
            raise rj.client_id_duplicated()
        now = self.now_ms()
        order = Order(self._order_id(), client_id, req.symbol, req.side, req.type, req.time_in_force,
                      qty, req.price, req.position_side, req.reduce_only, False, now, now)
        account.add_order(order)
        ack = copy.copy(order)
        self._emit_order(account, order, "NEW")
        self._work(account, order, new=True, parts=parts)
        self._commit(account)
        return copy.copy(order) if req.result_response else ack

    def find_order(self, api_key: str, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        account = self.accounts[api_key]
        for order in reversed(account.orders.values()):  # a reused client id: the newest order
            if order.symbol == symbol and (order.order_id == order_id or
                                           (order_id is None and order.client_id == client_id)):
                return order
        raise rj.no_such_order()

    def cancel_order(self, api_key: str, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        account = self.accounts[api_key]
        try:
            order = self.find_order(api_key, symbol, order_id, client_id)
        except rj.Rejection:
            raise rj.cancel_rejected() from None
        if not order.is_open:
            raise rj.cancel_rejected()
        self._finish(account, order, "CANCELED")
        self._commit(account)
        return copy.copy(order)

    def cancel_all_orders(self, api_key: str, symbol: str) -> None:
        if symbol not in self.specs:
            raise rj.invalid_symbol()
        account = self.accounts[api_key]
        for order in account.open_orders():
            if order.symbol == symbol:
                self._finish(account, order, "CANCELED")
        self._commit(account)

    # ------------------------------------------------------------------ algo orders

    def place_algo(self, api_key: str, params: Params) -> AlgoOrder:
        """``POST /fapi/v1/algoOrder``: validate, check -2021 and the cap, emit ALGO_UPDATE NEW."""
        account = self.accounts[api_key]
        req = parse_new_algo(params, self.specs, account.dual_side)
        price = self._working_price(req.symbol, req.working_type)
        if req.type == "TRAILING_STOP_MARKET":
            if req.activate_price is not None and (
                    req.activate_price >= price if req.side == "BUY" else req.activate_price <= price):
                raise rj.would_immediately_trigger()
        elif would_trigger(req.type, req.side, req.trigger_price, price):
            raise rj.would_immediately_trigger()
        if len(account.open_algos()) >= self.algo_cap:
            raise rj.max_stop_orders()
        client_id = req.client_algo_id or self._client_id()
        if any(a.client_algo_id == client_id for a in account.open_algos()):
            raise rj.client_id_duplicated()
        algo = self._new_algo(req, client_id)
        account.add_algo(algo)
        self.outbox.append(Outgoing(api_key, ev.algo_update(algo, self.specs[algo.symbol], self.now_ms())))
        self._commit(account)
        return copy.copy(algo)

    def _new_algo(self, req: NewAlgo, client_id: str) -> AlgoOrder:
        now = self.now_ms()
        self._next_algo_id += 1
        algo = AlgoOrder(self._next_algo_id, client_id, req.type, req.symbol, req.side, req.position_side,
                         req.time_in_force, req.qty, req.trigger_price, req.price, req.working_type,
                         req.close_position, req.price_protect, req.reduce_only, now, now,
                         activate_price=req.activate_price, callback_rate=req.callback_rate)
        if req.type == "TRAILING_STOP_MARKET" and req.activate_price is None:
            # "activatePrice … default latest price" (docs/BINANCE.md §3.3): active from the start.
            algo.activate_price = algo.extreme = self._working_price(req.symbol, req.working_type)
            algo.activated = True
        return algo

    def find_algo(self, api_key: str, algo_id: int | None, client_algo_id: str | None) -> AlgoOrder:
        for algo in reversed(self.accounts[api_key].algos.values()):
            if algo.algo_id == algo_id or (algo_id is None and algo.client_algo_id == client_algo_id):
                return algo
        raise rj.no_such_order()

    def cancel_algo(self, api_key: str, algo_id: int | None, client_algo_id: str | None) -> AlgoOrder:
        """Only an untriggered (NEW) algo can be cancelled here; else -2011 (docs/BINANCE.md §3.7)."""
        try:
            algo = self.find_algo(api_key, algo_id, client_algo_id)
        except rj.Rejection:
            raise rj.cancel_rejected() from None
        if not algo.is_open:
            raise rj.cancel_rejected()
        self._end_algo(self.accounts[api_key], algo, "CANCELED")
        return copy.copy(algo)

    def cancel_all_algos(self, api_key: str, symbol: str) -> None:
        if symbol not in self.specs:
            raise rj.invalid_symbol()
        account = self.accounts[api_key]
        for algo in account.open_algos():
            if algo.symbol == symbol:
                self._end_algo(account, algo, "CANCELED")
