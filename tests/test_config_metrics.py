"""[metrics]: off by default, loopback unless explicitly allowed, a usable textfile path."""

from __future__ import annotations

from typing import Any

import pytest

from watchdog.config import Config, parse_config, parse_listen
from watchdog.errors import ConfigError


def error_for(metrics: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"metrics": metrics}, "cfg.toml")
    return str(info.value)


def test_off_by_default() -> None:
    assert Config().metrics.listen == ""
    assert Config().metrics.textfile_path == ""


@pytest.mark.parametrize("listen", ["127.0.0.1:9731", "127.0.0.2:1", "localhost:9731",
                                    "[::1]:9731", "127.255.0.1:65535"])
def test_loopback_addresses_are_accepted(listen: str) -> None:
    assert parse_config({"metrics": {"listen": listen}}, "cfg.toml").metrics.listen == listen


@pytest.mark.parametrize("listen", ["0.0.0.0:9731", "10.0.0.5:9731", "[::]:9731", "metrics.example:9731"])
def test_non_loopback_is_refused_unless_allowed(listen: str) -> None:
    message = error_for({"listen": listen})
    assert message.startswith("cfg.toml: [metrics] listen: ")
    assert "not a loopback address" in message
    assert "allow_non_loopback" in message
    allowed = parse_config({"metrics": {"listen": listen, "allow_non_loopback": True}}, "cfg.toml")
    assert allowed.metrics.listen == listen


@pytest.mark.parametrize(("listen", "problem"), [
    ("9731", 'expected "HOST:PORT"'), ("127.0.0.1", 'expected "HOST:PORT"'),
    ("127.0.0.1:0", "port must be 1-65535"), ("127.0.0.1:70000", "port must be 1-65535"),
    ("http://127.0.0.1:9731", 'expected "HOST:PORT"'), ("::1:9731", 'expected "HOST:PORT"')])
def test_malformed_listen_is_one_clear_line(listen: str, problem: str) -> None:
    message = error_for({"listen": listen})
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize("path", ["metrics.prom", "/var/lib/node/wd.txt", "relative/wd.prom"])
def test_textfile_path_must_be_absolute_and_end_in_prom(path: str) -> None:
    assert "[metrics] textfile_path: expected an absolute path ending in .prom" in error_for(
        {"textfile_path": path})


def test_parse_listen() -> None:
    assert parse_listen("[::1]:9731") == ("::1", 9731)
    assert parse_listen("localhost:80") == ("localhost", 80)
