"""What each Binance request costs in IP weight: the one table the client, the poll schedule,
the budget and the configuration check all price from (docs/BINANCE.md §3.2, §4.1, §4.3).

Sources, in our words:
- The IP limit: 2400 weight per minute per IP (exchangeInfo's ``REQUEST_WEIGHT`` rate limit,
  MINUTE x1), shared by every process on the host, the bot included; each answer reports the
  IP's use in ``X-MBX-USED-WEIGHT-1M``.
  https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
- Per-endpoint weights: Binance's official SDK, generated from its API specs
  (https://github.com/binance/binance-connector-python, the USDⓈ-M futures client's
  ``rest_api/api/*.py``), and the endpoint pages under
  https://developers.binance.com/docs/derivatives/usds-margined-futures
- The listen-key calls cost 1 each:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Connect
- Placing an order costs no IP weight, only one on the account's order counts (300 per 10 s,
  1200 per minute), in the same general-info page and SDK. The algo order endpoints (where
  conditional orders live since 2025-11-06,
  https://developers.binance.com/docs/derivatives/change-log) are priced in the SDK's
  ``trade_api.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["ALL_SYMBOLS_WEIGHTS", "CONNECT_WEIGHT", "IP_WEIGHT_LIMIT_PER_MIN", "ORDERS_WEIGHT",
           "POSITIONS_WEIGHT", "SWEEP_LIST_WEIGHT", "SWEEP_WEIGHT", "WEIGHTS", "request_weight"]

IP_WEIGHT_LIMIT_PER_MIN: Final = 2400

# Per request, as the client sends it. Per-symbol order reads cost 1; the same reads without
# ``symbol`` are priced in ALL_SYMBOLS_WEIGHTS, which is why every read but the poller's periodic
# sweep passes one.
WEIGHTS: Final[Mapping[str, int]] = {
    "GET /fapi/v1/time": 1,
    "GET /fapi/v1/positionSide/dual": 30,
    "GET /fapi/v3/positionRisk": 5,
    "GET /fapi/v1/openOrders": 1,
    "GET /fapi/v1/openAlgoOrders": 1,
    "GET /fapi/v1/order": 1,
    "GET /fapi/v1/algoOrder": 1,
    "DELETE /fapi/v1/order": 1,
    "DELETE /fapi/v1/algoOrder": 1,
    "POST /fapi/v1/algoOrder": 0,   # 0 IP weight; 1 on the account's order counts
    "GET /fapi/v1/exchangeInfo": 1,
    "POST /fapi/v1/order": 0,       # orders cost no IP weight, only order count
    "POST /fapi/v1/listenKey": 1,
    "PUT /fapi/v1/listenKey": 1,
}
# The same reads without ``symbol`` cover every symbol and cost 40 each: only the poller's
# periodic sweep uses them.
ALL_SYMBOLS_WEIGHTS: Final[Mapping[str, int]] = {
    "GET /fapi/v1/openOrders": 40,
    "GET /fapi/v1/openAlgoOrders": 40,
}
_UNLISTED_WEIGHT = 1  # an endpoint missing above is priced as the common case

# What the schedule, the stream and the configuration check plan with.
POSITIONS_WEIGHT: Final = WEIGHTS["GET /fapi/v3/positionRisk"]
# One symbol's order read: its regular and its algo orders.
ORDERS_WEIGHT: Final = WEIGHTS["GET /fapi/v1/openOrders"] + WEIGHTS["GET /fapi/v1/openAlgoOrders"]
# Both all-symbols order reads (the stream's post-connect read of a big account, ``orphans``).
SWEEP_WEIGHT: Final = (ALL_SYMBOLS_WEIGHTS["GET /fapi/v1/openOrders"]
                       + ALL_SYMBOLS_WEIGHTS["GET /fapi/v1/openAlgoOrders"])
# One list's sweep: the poller sweeps each list on its own (poller.py rule 4).
SWEEP_LIST_WEIGHT: Final = max(ALL_SYMBOLS_WEIGHTS["GET /fapi/v1/openOrders"],
                               ALL_SYMBOLS_WEIGHTS["GET /fapi/v1/openAlgoOrders"])
# A user-stream connect (a first one, a reconnect or a blind replacement): a listen key and the
# post-connect positions read, paid from the one budget (stream.py rule 7).
CONNECT_WEIGHT: Final = WEIGHTS["POST /fapi/v1/listenKey"] + POSITIONS_WEIGHT


def request_weight(endpoint: str, *, has_symbol: bool) -> int:
    """The IP weight of ``METHOD /path``, sent with or without a ``symbol`` parameter."""
    if not has_symbol and endpoint in ALL_SYMBOLS_WEIGHTS:
        return ALL_SYMBOLS_WEIGHTS[endpoint]
    return WEIGHTS.get(endpoint, _UNLISTED_WEIGHT)
