"""Core tests are pure: no sockets, no event loop. A socket attempt here is a bug."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket


@pytest.fixture(autouse=True)
def _no_sockets() -> Iterator[None]:
    pytest_socket.disable_socket()
    try:
        yield
    finally:
        pytest_socket.enable_socket()
