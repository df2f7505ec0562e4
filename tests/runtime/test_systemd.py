"""sd_notify over a real AF_UNIX datagram socket (path and abstract namespace)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchdog.runtime.systemd import Notifier, watchdog_interval_s


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"wd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    yield "@" + name, sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_messages_over_a_path_socket(path_socket: tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready(status="positions=1 stream=live")
    assert received(sock) == ["READY=1", "STATUS=positions=1 stream=live"]
    assert notifier.status("stream=live\npositions=3")
    assert received(sock) == ["STATUS=stream=live positions=3"]
    assert notifier.keepalive()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert received(sock) == ["STOPPING=1"]


def test_messages_over_the_abstract_namespace(abstract_socket: tuple[str, socket.socket]) -> None:
    address, sock = abstract_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.keepalive()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.stopping(status="SIGTERM")
    assert received(sock) == ["STOPPING=1", "STATUS=SIGTERM"]


def test_no_socket_is_a_noop() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.keepalive()
    assert not notifier.status("x")


def test_unsupported_address_disables_notifications() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert not notifier.keepalive()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_interval_s(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected


def test_keepalive_interval_is_half_of_watchdog_usec_or_one_second() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).keepalive_interval_s == 15.0
    assert Notifier({}).keepalive_interval_s == 1.0
