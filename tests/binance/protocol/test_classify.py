"""``classify_transport_failure``: a transport failure, told by ``rest.py`` whether the request
may have been sent, mapped without an HTTP client (the pure half of rest's transport seam)."""

from __future__ import annotations

import pytest

from watchdog.binance.protocol.classify import classify_transport_failure
from watchdog.errors import ExchangeError, ExchangeUnavailable, OutcomeUnknown


@pytest.mark.parametrize(("idempotent", "maybe_sent", "expected"), [
    (True, True, ExchangeUnavailable),    # a read: retry it
    (True, False, ExchangeUnavailable),
    (False, False, ExchangeUnavailable),  # refused before sending: certainly not executed
    (False, True, OutcomeUnknown),        # a cancel that may have executed: re-query
])
def test_transport_failure(idempotent: bool, maybe_sent: bool,
                           expected: type[ExchangeError]) -> None:
    error = classify_transport_failure("ReadTimeout", "timed out", "DELETE /fapi/v1/order",
                                       idempotent=idempotent, maybe_sent=maybe_sent)
    assert type(error) is expected
    assert error.endpoint == "DELETE /fapi/v1/order"


def test_a_signed_query_in_the_detail_is_cut() -> None:
    error = classify_transport_failure(
        "ConnectError", "GET https://x/fapi/v3/positionRisk?timestamp=1&signature=abc failed",
        "GET /fapi/v3/positionRisk", idempotent=True, maybe_sent=False)
    assert "signature" not in str(error)
    assert "?…" in str(error)
