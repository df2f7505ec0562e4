"""The one way we retry: only ``ExchangeUnavailable``, bounded, jittered, each attempt logged.

House rule: tenacity's defaults (retry everything, forever, no wait, ``RetryError``)
are banned; every retry in the package is built by :func:`retrying_for`. Only idempotent
GETs are retried; mutations (cancels) are never retried here, their ``OutcomeUnknown`` is
resolved by re-querying (docs/BINANCE.md §5.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from watchdog.errors import ExchangeUnavailable

__all__ = ["RetryPolicy", "retrying_for"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how fast to retry a transient failure."""

    max_delay_s: float = 10.0   # give up (re-raise the last error) after this long
    initial_s: float = 0.2      # first wait, before jitter
    max_wait_s: float = 2.0     # cap of one wait
    jitter_s: float = 0.2
    max_attempts: int = 8       # and never more attempts than this (bounded even if time stalls)


def _log_before_sleep(call: RetryCallState) -> None:
    exc = call.outcome.exception() if call.outcome is not None else None
    delay_s = call.next_action.sleep if call.next_action is not None else 0.0
    name = getattr(call.fn, "__name__", "call")
    logger.warning("retrying {} attempt={} delay_s={:.2f} error={}", name,
                   call.attempt_number, delay_s, exc)


class _WaitHonouringRetryAfter(wait_exponential_jitter):
    """Exponential jitter, but never shorter than the ``Retry-After`` Binance sent (429/418)."""

    def __call__(self, retry_state: RetryCallState) -> float:
        wait_s = super().__call__(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        if isinstance(exc, ExchangeUnavailable) and exc.retry_after_s is not None:
            wait_s = max(wait_s, exc.retry_after_s)
        return float(wait_s)


class _RetryAfterBeyond(stop_base):
    """Stop now when Binance asked us to wait longer than the time this call has left:
    sleeping past ``max_delay_s`` would hide the outage inside one call."""

    def __init__(self, max_delay_s: float) -> None:
        self.max_delay_s = max_delay_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return (isinstance(exc, ExchangeUnavailable) and exc.retry_after_s is not None
                and exc.retry_after_s > self.max_delay_s - (retry_state.seconds_since_start or 0.0))


def retrying_for(policy: RetryPolicy, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncRetrying:
    """Build the AsyncRetrying for one idempotent call (``async for attempt in …``).

    ``sleep`` is injectable so unit tests run without waiting.
    """
    return AsyncRetrying(
        retry=retry_if_exception_type(ExchangeUnavailable),
        stop=stop_any(stop_after_delay(policy.max_delay_s),
                      stop_after_attempt(policy.max_attempts),
                      _RetryAfterBeyond(policy.max_delay_s)),
        wait=_WaitHonouringRetryAfter(multiplier=policy.initial_s, max=policy.max_wait_s,
                                      jitter=policy.jitter_s),
        reraise=True,
        before_sleep=_log_before_sleep,
        sleep=sleep,
    )
