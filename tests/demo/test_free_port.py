"""``free_port`` has one home (``watchdog.demo.processes``, production code) that the tests'
fixtures and the benchmark import; nothing in production imports test code."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

from tests.support import redis_server
from watchdog.demo.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_port_is_free_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


def test_tests_and_bench_use_the_one_copy() -> None:
    from bench import infra

    assert redis_server.free_port is free_port
    assert infra.free_port is free_port
    defined = [str(path.relative_to(ROOT)) for folder in ("watchdog", "tests", "bench")
               for path in sorted((ROOT / folder).rglob("*.py"))
               for node in ast.walk(ast.parse(path.read_text("utf-8")))
               if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "free_port"]
    assert defined == ["watchdog/demo/processes.py"]
