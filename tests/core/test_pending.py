"""The pending-request memory the book and the stream proof share: bounded, oldest out first."""

from __future__ import annotations

from watchdog.core.pending import MAX_PENDING_REQUESTS, remember_request


def test_beyond_the_limit_the_oldest_request_is_forgotten() -> None:
    requests: dict[int, str] = {}
    for request_id in range(MAX_PENDING_REQUESTS + 3):
        remember_request(requests, request_id, f"r{request_id}")
    assert len(requests) == MAX_PENDING_REQUESTS
    assert min(requests) == 3
    assert requests[MAX_PENDING_REQUESTS + 2] == f"r{MAX_PENDING_REQUESTS + 2}"


def test_an_answered_request_frees_its_place() -> None:
    requests: dict[int, int] = {}
    for request_id in range(MAX_PENDING_REQUESTS):
        remember_request(requests, request_id, request_id)
    requests.pop(0)
    remember_request(requests, -1, -1)
    assert len(requests) == MAX_PENDING_REQUESTS
    assert 1 in requests
