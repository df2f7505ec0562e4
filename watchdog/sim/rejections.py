"""Binance-shaped error answers: ``{"code": …, "msg": …}`` with Binance's HTTP status.

The model raises :class:`Rejection`; the server turns it into a response unchanged. Texts are
Binance's wire messages (docs/BINANCE.md §5.1, §4.2, §4.3); statuses: 401 for API-key problems
(-2014/-2015, seen in ccxt#7822/#14993 logs), 429/418 for limits, 400 for everything else.
"""

from __future__ import annotations

__all__ = [
    "Rejection",
    "bad_api_key_format",
    "bad_precision",
    "bad_signature",
    "banned",
    "cancel_rejected",
    "client_id_duplicated",
    "close_position_invalid",
    "close_position_with_quantity",
    "invalid_client_id",
    "invalid_listen_key",
    "invalid_param",
    "invalid_side",
    "invalid_symbol",
    "invalid_timestamp",
    "invalid_type",
    "mandatory_param",
    "max_stop_orders",
    "min_notional",
    "no_such_order",
    "not_required_param",
    "position_side_mismatch",
    "quantity_not_positive",
    "reduce_only_rejected",
    "server_error",
    "stop_order_switch_algo",
    "tick_size",
    "too_many_orders",
    "too_many_requests",
    "unknown_api_key",
    "would_immediately_trigger",
]


class Rejection(Exception):
    """A request the simulated exchange refuses; carries everything the HTTP answer needs."""

    def __init__(self, code: int, msg: str, *, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def bad_api_key_format() -> Rejection:
    return Rejection(-2014, "API-key format invalid.", status=401)


def unknown_api_key() -> Rejection:
    return Rejection(-2015, "Invalid API-key, IP, or permissions for action.", status=401)


def bad_signature() -> Rejection:
    return Rejection(-1022, "Signature for this request is not valid.")


def invalid_timestamp(ahead: bool) -> Rejection:
    if ahead:
        return Rejection(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    return Rejection(-1021, "Timestamp for this request is outside of the recvWindow.")


def mandatory_param(name: str) -> Rejection:
    return Rejection(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def not_required_param(name: str) -> Rejection:
    return Rejection(-1106, f"Parameter '{name}' sent when not required.")


def invalid_symbol() -> Rejection:
    return Rejection(-1121, "Invalid symbol.")


def invalid_side() -> Rejection:
    return Rejection(-1117, "Invalid side.")


def invalid_type() -> Rejection:
    return Rejection(-1116, "Invalid orderType.")


def bad_precision() -> Rejection:
    return Rejection(-1111, "Precision is over the maximum defined for this asset.")


def tick_size() -> Rejection:
    return Rejection(-4014, "Price not increased by tick size.")


def quantity_not_positive() -> Rejection:
    return Rejection(-4003, "Quantity less than or equal to zero.")


def min_notional(notional: str) -> Rejection:
    return Rejection(-4164, f"Order's notional must be no smaller than {notional} "
                            "(unless you choose reduce only).")


def invalid_listen_key() -> Rejection:
    return Rejection(-1125, "This listenKey does not exist.")


def cancel_rejected() -> Rejection:
    return Rejection(-2011, "Unknown order sent.")


def no_such_order() -> Rejection:
    return Rejection(-2013, "Order does not exist.")


def would_immediately_trigger() -> Rejection:
    return Rejection(-2021, "Order would immediately trigger.")


def reduce_only_rejected() -> Rejection:
    return Rejection(-2022, "ReduceOnly Order is rejected.")


def stop_order_switch_algo() -> Rejection:
    return Rejection(-4120, "Order type not supported for this endpoint. "
                            "Please use the Algo Order API endpoints instead.")


def position_side_mismatch() -> Rejection:
    return Rejection(-4061, "Order's position side does not match user's setting.")


def close_position_with_quantity() -> Rejection:
    return Rejection(-4137, "Quantity must be zero with closePosition equals true")


def close_position_invalid(order_type: str) -> Rejection:
    return Rejection(-4136, f"Target strategy invalid for orderType {order_type},closePosition true")


def invalid_param(name: str) -> Rejection:
    return Rejection(-1130, f"Data sent for parameter '{name}' is not valid.")


def invalid_client_id() -> Rejection:
    return Rejection(-4015, "Client order id is not valid.")


def max_stop_orders() -> Rejection:
    return Rejection(-4045, "Reach max stop order limit.")


def client_id_duplicated() -> Rejection:
    return Rejection(-4116, "ClientOrderId is duplicated.")


def too_many_requests(limit: int, retry_after_s: int) -> Rejection:
    return Rejection(-1003, f"Too many requests; current limit is {limit} requests per minute. Please use "
                            "the websocket for live updates to avoid polling the API.",
                     status=429, headers={"Retry-After": str(retry_after_s)})


def banned(until_ms: int, retry_after_s: int) -> Rejection:
    return Rejection(-1003, f"Way too many requests; IP banned until {until_ms}. Please use the websocket "
                            "for live updates to avoid bans.",
                     status=418, headers={"Retry-After": str(retry_after_s)})


def too_many_orders(limit: int, interval: str, retry_after_s: int) -> Rejection:
    return Rejection(-1015, f"Too many new orders; current limit is {limit} orders per {interval}.",
                     status=429, headers={"Retry-After": str(retry_after_s)})


_SERVER_ERRORS: dict[int, tuple[int, str]] = {
    408: (-1007, "Timeout waiting for response from backend server. Send status unknown; "
                 "execution status unknown."),
    500: (-1000, "An unknown error occured while processing the request."),
    502: (-1001, "Internal error; unable to process your request. Please try again."),
    503: (-1001, "Service Unavailable."),
    504: (-1007, "Timeout waiting for response from backend server. Send status unknown; "
                 "execution status unknown."),
}


def server_error(status: int, code: int | None = None, msg: str | None = None) -> Rejection:
    """An injected failure (fault ``rest_errors``); 429/418/401 get their usual bodies."""
    if status == 429:
        base = too_many_requests(2400, 1)
    elif status == 418:
        base = banned(0, 1)
    elif status == 401:
        base = unknown_api_key()
    else:
        default_code, default_msg = _SERVER_ERRORS.get(status, (-1000, "An unknown error occured while "
                                                                       "processing the request."))
        base = Rejection(default_code, default_msg, status=status)
    return Rejection(code if code is not None else base.code, msg if msg is not None else base.msg,
                     status=status, headers=base.headers)
