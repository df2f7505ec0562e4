"""The matching side of the simulated venue: fills, triggers and what they emit. Pure.

:class:`Matching` is the base of :class:`~watchdog.sim.exchange.SimExchange`: the exchange
owns the request-facing operations (accounts, listen keys, placing and cancelling), this module
owns what happens when an order trades or a price moves — position arithmetic, reduce-only
capping, algo triggers (docs/BINANCE.md §3.5 event order) and exchange-initiated closes (liquidation/ADL).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from watchdog.sim import events as ev
from watchdog.sim import rejections as rj
from watchdog.sim.account import Account, AccountView, Trade
from watchdog.sim.journal import Journal
from watchdog.sim.market import SymbolSpec
from watchdog.sim.orders import ZERO, AlgoOrder, Order, trailing_step, would_trigger

__all__ = ["MarketPrint", "Matching", "Outgoing"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event for the user streams of ``api_key`` (only ``listen_key``'s, when set)."""

    api_key: str
    event: dict[str, object]
    listen_key: str | None = None


@dataclass(frozen=True, slots=True)
class MarketPrint:
    """A public market fact for the market streams (``market_stream.py``): ``kind`` "trade"
    (an aggTrade: a fill, or a contract-price move printed by someone else) or "mark" (a new
    mark price). ``buyer_maker``: the taker sold (Binance's ``m``)."""

    kind: str
    symbol: str
    price: Decimal
    time_ms: int
    qty: Decimal = Decimal(0)
    buyer_maker: bool = False


class Matching:
    """Fill and trigger machinery; state is set up by ``SimExchange.__init__``."""

    specs: dict[str, SymbolSpec]
    now_ms: Callable[[], int]
    history_ms: int
    taker_fee: Decimal
    maker_fee: Decimal
    seed: str
    mark: dict[str, Decimal]
    last: dict[str, Decimal]
    accounts: dict[str, Account]
    outbox: list[Outgoing]
    market_outbox: list[MarketPrint]
    stuck_triggering: bool
    _history: dict[str, deque[AccountView]]
    journal: Journal
    wall_ms: Callable[[], int]
    _next_order_id: int
    _next_trade_id: int
    _next_client: int

    def _closable(self, account: Account, symbol: str, position_side: str, side: str) -> Decimal:
        """How much an order on ``side`` can reduce the position (0 if it would open/increase)."""
        position = account.positions.get((symbol, position_side))
        amount = position.amount if position is not None else ZERO
        if side == "SELL":
            return amount if amount > 0 else ZERO
        return -amount if amount < 0 else ZERO

    def _is_close(self, position_side: str, side: str) -> bool:
        return (position_side, side) in (("LONG", "SELL"), ("SHORT", "BUY"))

    def _work(self, account: Account, order: Order, *, new: bool, parts: int = 1) -> None:
        """Fill ``order`` if it can trade at the current contract price; expire IOC leftovers.

        ``parts`` > 1 splits a MARKET fill into that many executions (ccxt#26407's split fills).
        """
        last = self.last[order.symbol]
        if order.type == "MARKET":
            for qty in _split(order.qty, parts, self.specs[order.symbol].step_size):
                if order.is_open:
                    self._execute(account, order, qty, last, maker=False)
            return
        crosses = last <= order.price if order.side == "BUY" else last >= order.price
        if crosses:
            if new and order.time_in_force == "GTX":
                self._finish(account, order, "EXPIRED", expiry_reason=11)
                return
            # A new crossing LIMIT takes at the market; a resting one is hit at its own price.
            price = last if new else order.price
            self._execute(account, order, order.qty - order.executed_qty, price, maker=not new)
        elif new and order.time_in_force in ("IOC", "FOK"):
            self._finish(account, order, "EXPIRED", expiry_reason=2 if order.time_in_force == "IOC" else 10)

    def _execute(self, account: Account, order: Order, qty: Decimal, price: Decimal, *,
                 maker: bool, execution: str = "TRADE", account_update: bool = True) -> None:
        spec = self.specs[order.symbol]
        capped = False
        if order.reduce_only or self._is_close(order.position_side, order.side):
            closable = self._closable(account, order.symbol, order.position_side, order.side)
            if closable == 0:
                self._finish(account, order, "EXPIRED", expiry_reason=4)
                return
            # Reduce-only never flips: the order is done once the position is closed.
            capped = qty >= closable
            qty = min(qty, closable)
        now = self.now_ms()
        position = account.position(order.symbol, order.position_side)
        pnl = position.apply(qty if order.side == "BUY" else -qty, price)
        position.update_time_ms = now
        commission = qty * price * (self.maker_fee if maker else self.taker_fee)
        account.wallet += pnl - commission
        order.executed_qty += qty
        order.cum_quote += qty * price
        done = order.executed_qty >= order.qty or capped
        order.status = "FILLED" if done else "PARTIALLY_FILLED"
        order.update_time_ms = now
        self._next_trade_id += 1
        fill = ev.Fill(self._next_trade_id, qty, price, maker=maker, commission=commission,
                       realized_pnl=pnl)
        account.trades.append(Trade(self._next_trade_id, order.order_id, order.symbol, order.side,
                                    order.position_side, price, qty, commission, pnl, maker, now))
        # Every fill is a public trade too (aggTrade); the taker's side sets ``m``.
        taker_sold = (order.side == "SELL") != maker
        self.market_outbox.append(MarketPrint("trade", order.symbol, price, now, qty, taker_sold))
        trade = Outgoing(account.api_key, ev.order_trade_update(
            order, spec, execution=execution, now_ms=now, fill=fill))
        lite = Outgoing(account.api_key, ev.trade_lite(order, spec, fill, now))
        # Liquidations report CALCULATED first (fixture ws_futures_order_update_liquidation).
        self.outbox.extend([trade, lite] if execution == "CALCULATED" else [lite, trade])
        if account_update:
            row = ev.position_row(order.symbol, order.position_side, position.amount, position.entry,
                                  position.realized, position.unrealized(self.mark[order.symbol]), spec)
            self.outbox.append(Outgoing(account.api_key,
                                        ev.account_update("ORDER", account.wallet, ZERO, [row], now)))
        if not order.is_open:
            self._on_order_done(account, order)

    def _finish(self, account: Account, order: Order, status: str, *, expiry_reason: int = 0) -> None:
        order.status = status
        order.update_time_ms = self.now_ms()
        self._emit_order(account, order, status, expiry_reason=expiry_reason)
        self._on_order_done(account, order)

    def _on_order_done(self, account: Account, order: Order) -> None:
        """A triggered algo's child is done → ALGO_UPDATE FINISHED (after the fill, docs/BINANCE.md §3.5)."""
        if order.algo_id is None:
            return
        algo = account.algos[order.algo_id]
        algo.status = "FINISHED"
        algo.actual_price = order.avg_price
        algo.actual_qty = order.executed_qty
        algo.update_time_ms = self.now_ms()
        self.outbox.append(Outgoing(account.api_key, ev.algo_update(
            algo, self.specs[algo.symbol], self.now_ms(), avg_price=order.avg_price,
            executed_qty=order.executed_qty)))

    def _emit_order(self, account: Account, order: Order, execution: str, *, expiry_reason: int = 0) -> None:
        self.outbox.append(Outgoing(account.api_key, ev.order_trade_update(
            order, self.specs[order.symbol], execution=execution, now_ms=self.now_ms(),
            expiry_reason=expiry_reason)))

    def _end_algo(self, account: Account, algo: AlgoOrder, status: str, reason: str = "") -> None:
        algo.status = status
        algo.reject_reason = reason
        algo.update_time_ms = self.now_ms()
        event = ev.algo_update(algo, self.specs[algo.symbol], self.now_ms())
        self.outbox.append(Outgoing(account.api_key, event))
        self._commit(account)

    # ------------------------------------------------------------------ prices and triggers

    def force_close(self, api_key: str, symbol: str, position_side: str, *, kind: str = "liquidation",
                    account_update: bool = True) -> Order:
        """An exchange-initiated close at the mark price: liquidation or ADL (docs/BINANCE.md §2.1).

        Liquidation: ``c`` = ``autoclose-…``, execution CALCULATED; ADL: ``c`` =
        ``adl_autoclose-…``, execution TRADE. ``account_update=False`` leaves out the
        ACCOUNT_UPDATE, the symptom reported in ccxt#27064 (UNCONFIRMED as Binance behaviour).
        No algo order is touched: stops on the symbol are orphaned, as in production.
        """
        if kind not in ("liquidation", "adl"):
            raise ValueError(f"kind: expected 'liquidation' or 'adl', got {kind!r}")
        account = self.accounts[api_key]
        position = account.positions.get((symbol, position_side))
        if position is None or position.amount == 0:
            raise ValueError(f"no open {symbol} {position_side} position to close")
        now = self.now_ms()
        self._next_client += 1
        prefix = "autoclose" if kind == "liquidation" else "adl_autoclose"
        side = "SELL" if position.amount > 0 else "BUY"
        qty = abs(position.amount)
        order = Order(self._order_id(), f"{prefix}-{now}{self._next_client}", symbol, side, "MARKET",
                      "GTC", qty, ZERO, position_side, False, False, now, now)
        account.add_order(order)
        execution = "CALCULATED" if kind == "liquidation" else "TRADE"
        self._execute(account, order, qty, self.mark[symbol], maker=False, execution=execution,
                      account_update=account_update)
        self._commit(account)
        return order

    def _working_price(self, symbol: str, working_type: str) -> Decimal:
        return self.mark[symbol] if working_type == "MARK_PRICE" else self.last[symbol]

    def set_price(self, symbol: str, *, mark: Decimal | None = None, last: Decimal | None = None) -> None:
        """Move mark and/or contract price; fire algo triggers, then match resting LIMITs."""
        if symbol not in self.specs:
            raise rj.invalid_symbol()
        now = self.now_ms()
        if mark is not None:
            self.mark[symbol] = mark
            self.market_outbox.append(MarketPrint("mark", symbol, mark, now))
        if last is not None and last != self.last[symbol]:
            # The move is printed before anything it triggers fills (a stop's trigger is a
            # trade at its price); a setting that does not move the price prints nothing.
            self.market_outbox.append(MarketPrint("trade", symbol, last, now,
                                                  self.specs[symbol].step_size,
                                                  last < self.last[symbol]))
        if last is not None:
            self.last[symbol] = last
        for account in self.accounts.values():
            for algo in sorted(account.open_algos(), key=lambda a: a.algo_id):
                if algo.symbol == symbol:
                    self._evaluate(account, algo)
            for order in sorted(account.open_orders(), key=lambda o: o.order_id):
                if order.symbol == symbol and order.type == "LIMIT":
                    self._work(account, order, new=False)
            self._commit(account)

    def _evaluate(self, account: Account, algo: AlgoOrder) -> None:
        price = self._working_price(algo.symbol, algo.working_type)
        if algo.order_type == "TRAILING_STOP_MARKET":
            just_activated, fires = trailing_step(algo, price)
            if just_activated:  # second NEW with ia=true (change log 2026-08-07)
                self.outbox.append(Outgoing(account.api_key,
                                            ev.algo_update(algo, self.specs[algo.symbol], self.now_ms())))
        else:
            fires = would_trigger(algo.order_type, algo.side, algo.trigger_price, price)
        if fires:
            self.trigger(account, algo)

    def trigger(self, account: Account, algo: AlgoOrder) -> None:
        """TRIGGERING → TRIGGERED + child order (or REJECTED when it cannot reduce)."""
        spec = self.specs[algo.symbol]
        now = self.now_ms()
        algo.status = "TRIGGERING"
        algo.trigger_time_ms = now
        algo.update_time_ms = now
        self.outbox.append(Outgoing(account.api_key, ev.algo_update(algo, spec, now)))
        if self.stuck_triggering:
            return  # forwarded to the matching engine, never placed there (docs/BINANCE.md §3.6)
        reducing = algo.reduce_only or algo.close_position
        closable = self._closable(account, algo.symbol, algo.position_side, algo.side)
        qty = algo.qty
        if algo.close_position:
            qty = closable
        elif reducing:
            qty = min(qty, closable)
        if reducing and qty == 0:
            self._end_algo(account, algo, "REJECTED", "Reduce Only reject")
            return
        order = Order(self._order_id(), algo.client_algo_id, algo.symbol, algo.side, algo.child_type,
                      algo.time_in_force, qty, algo.price, algo.position_side, reducing,
                      algo.close_position, now, now, orig_type=algo.order_type,
                      stop_price=algo.trigger_price, working_type=algo.working_type,
                      price_protect=algo.price_protect, algo_id=algo.algo_id,
                      activate_price=algo.activate_price, callback_rate=algo.callback_rate)
        account.add_order(order)
        algo.status = "TRIGGERED"
        algo.actual_order_id = order.order_id
        algo.actual_type = order.type
        self.outbox.append(Outgoing(account.api_key, ev.algo_update(algo, spec, now)))
        self._emit_order(account, order, "NEW")
        self._work(account, order, new=True)

    def _order_id(self) -> int:
        self._next_order_id += 1
        return self._next_order_id

    def _client_id(self) -> str:
        self._next_client += 1
        return hashlib.sha256(f"{self.seed}:c:{self._next_client}".encode()).hexdigest()[:22]

    def _commit(self, account: Account) -> None:
        now = self.now_ms()
        self.journal.observe(account, self.specs, account.api_key[:4] + "…", now, self.wall_ms())
        history = self._history[account.api_key]
        history.append(account.view(now, self.mark))
        while len(history) >= 2 and history[1].time_ms <= now - self.history_ms:
            history.popleft()


def _split(qty: Decimal, parts: int, step: Decimal) -> list[Decimal]:
    """``qty`` in ``parts`` step-aligned pieces (fewer if it is too small); they sum to ``qty``."""
    parts = max(1, min(parts, int(qty / step)))
    piece = (qty / parts / step).to_integral_value(rounding=ROUND_FLOOR) * step
    return [piece] * (parts - 1) + [qty - piece * (parts - 1)]
