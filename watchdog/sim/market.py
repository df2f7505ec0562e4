"""Listed symbols: their filters, default prices, and the public market documents.

``exchangeInfo`` and ``leverageBracket`` follow Binance's shapes (filters with string values,
brackets with numbers) because ccxt's ``load_markets``/``fetch_positions`` parse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "DEFAULT_SYMBOLS",
    "SymbolSpec",
    "default_specs",
    "exchange_info",
    "leverage_brackets",
    "parse_symbols",
]


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One USDⓈ-M perpetual: tick size, step size, minimum notional, starting price."""

    symbol: str
    base: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal
    price: Decimal
    quote: str = "USDT"

    @property
    def price_decimals(self) -> int:
        return max(0, -int(self.tick_size.as_tuple().exponent))

    @property
    def qty_decimals(self) -> int:
        return max(0, -int(self.step_size.as_tuple().exponent))

    def fmt_price(self, value: Decimal) -> str:
        """A price the way Binance prints it for this symbol (fixed decimals; zero is "0")."""
        if not value:
            return "0"
        return f"{value.quantize(Decimal(1).scaleb(-self.price_decimals)):f}"

    def fmt_qty(self, value: Decimal) -> str:
        return f"{value.quantize(Decimal(1).scaleb(-self.qty_decimals)):f}"


_KNOWN: dict[str, SymbolSpec] = {
    spec.symbol: spec
    for spec in (
        SymbolSpec("BTCUSDT", "BTC", Decimal("0.10"), Decimal("0.001"), Decimal("100"), Decimal("90000.00")),
        SymbolSpec("ETHUSDT", "ETH", Decimal("0.01"), Decimal("0.001"), Decimal("20"), Decimal("3000.00")),
        SymbolSpec("BASUSDT", "BAS", Decimal("0.00000001"), Decimal("1"), Decimal("5"),
                   Decimal("0.00832653")),
        SymbolSpec("DOGEUSDT", "DOGE", Decimal("0.00001"), Decimal("1"), Decimal("5"), Decimal("0.13850")),
    )
}

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "BASUSDT")


def default_specs(symbols: tuple[str, ...] | list[str] = DEFAULT_SYMBOLS) -> list[SymbolSpec]:
    """Specs for ``symbols``; unknown names get a generic spec (tick 0.0001, step 1, price 1)."""
    specs = []
    for name in symbols:
        name = name.upper()
        spec = _KNOWN.get(name)
        if spec is None:
            base = name[:-4] if name.endswith("USDT") else name
            spec = SymbolSpec(name, base, Decimal("0.0001"), Decimal("1"), Decimal("5"), Decimal("1.0000"))
        specs.append(spec)
    return specs


def parse_symbols(text: str) -> list[str]:
    """``"BTCUSDT,BASUSDT"`` or ``"BTCUSDT BASUSDT"`` → names (CLI ``--symbols``)."""
    return [part.strip().upper() for part in text.replace(",", " ").split() if part.strip()]


_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]

_ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET"]


def _symbol_info(spec: SymbolSpec) -> dict[str, object]:
    return {
        "symbol": spec.symbol, "pair": spec.symbol, "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base, "quoteAsset": spec.quote, "marginAsset": spec.quote,
        "pricePrecision": spec.price_decimals, "quantityPrecision": spec.qty_decimals,
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
        "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
        "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": f"{spec.tick_size:f}",
             "maxPrice": "1000000", "tickSize": f"{spec.tick_size:f}"},
            {"filterType": "LOT_SIZE", "minQty": f"{spec.step_size:f}", "maxQty": "10000000",
             "stepSize": f"{spec.step_size:f}"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": f"{spec.step_size:f}", "maxQty": "1000000",
             "stepSize": f"{spec.step_size:f}"},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": f"{spec.min_notional:f}"},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": "4"},
        ],
        "orderTypes": _ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSets": ["GRID", "COPY"],
    }


def exchange_info(specs: list[SymbolSpec], server_time_ms: int) -> dict[str, object]:
    """``GET /fapi/v1/exchangeInfo``."""
    return {
        "timezone": "UTC", "serverTime": server_time_ms, "futuresType": "U_MARGINED",
        "rateLimits": _RATE_LIMITS, "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [_symbol_info(spec) for spec in specs],
    }


def leverage_brackets(specs: list[SymbolSpec], symbol: str | None) -> list[dict[str, object]]:
    """``GET /fapi/v1/leverageBracket`` (numbers, not strings, as Binance sends them)."""
    rows: list[dict[str, object]] = []
    for spec in specs:
        if symbol is not None and spec.symbol != symbol:
            continue
        rows.append({"symbol": spec.symbol, "brackets": [
            {"bracket": 1, "initialLeverage": 75, "notionalCap": 10000, "notionalFloor": 0,
             "maintMarginRatio": 0.005, "cum": 0.0},
            {"bracket": 2, "initialLeverage": 50, "notionalCap": 500000, "notionalFloor": 10000,
             "maintMarginRatio": 0.01, "cum": 50.0},
        ]})
    return rows
