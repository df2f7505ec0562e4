"""Config: the example file equals the defaults (docs/RULES.md rule 7), and every kind of mistake
is one clear line (rule 3)."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from watchdog.config import (
    SECTIONS,
    Config,
    Credentials,
    calm_poll_interval_s,
    load_config,
    load_credentials,
    parse_config,
    parse_listen,
    redact_url,
)
from watchdog.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def error_for(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg.toml")
    return info.value


def test_example_file_equals_the_defaults() -> None:
    assert load_config(EXAMPLE) == Config()


def test_example_file_lists_every_key_and_nothing_else() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert list(data) == list(SECTIONS)
    for name, cls in SECTIONS.items():
        assert list(data[name]) == [f.name for f in dataclasses.fields(cls)], name


def test_example_file_comments_every_key() -> None:
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            assert "#" in line.split("=", 1)[1], line


def test_missing_sections_and_keys_take_defaults() -> None:
    config = parse_config({"redis": {"account": "bot2"}}, "cfg.toml")
    assert config.redis.account == "bot2"
    assert config.redis.url == Config().redis.url
    assert config.binance == Config().binance


def test_config_is_frozen_and_slotted() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.binance.poll_interval_s = 1.0  # type: ignore[misc]
    assert not hasattr(config.binance, "__dict__")


def test_int_is_accepted_where_a_float_is_expected() -> None:
    config = parse_config({"binance": {"request_timeout_s": 3}}, "cfg.toml")
    assert config.binance.request_timeout_s == 3.0
    assert isinstance(config.binance.request_timeout_s, float)


@pytest.mark.parametrize(("data", "expected"), [
    ({"binance": {"poll_intervl_s": 1.0}},
     "cfg.toml: [binance] poll_intervl_s: unknown key; did you mean 'poll_interval_s'?"),
    ({"bianance": {}}, "cfg.toml: [bianance]: unknown section; did you mean [binance]?"),
    ({"poll_interval_s": 1.0},
     "cfg.toml: poll_interval_s: key outside any section; it belongs under [binance]"),
    ({"redis": {"poll_interval_s": 1.0}},
     "cfg.toml: [redis] poll_interval_s: unknown key; it belongs under [binance]"),
    ({"binance": 3}, "cfg.toml: [binance]: expected a table [binance], got integer"),
    ({"binance": {"recv_window_ms": True}},
     "cfg.toml: [binance] recv_window_ms: expected an integer, got True (boolean)"),
    ({"binance": {"recv_window_ms": 5.0}},
     "cfg.toml: [binance] recv_window_ms: expected an integer, got 5.0 (float)"),
    ({"binance": {"poll_interval_s": "1"}},
     "cfg.toml: [binance] poll_interval_s: expected a number, got '1' (string)"),
    ({"binance": {"poll_interval_s": float("nan")}},
     "cfg.toml: [binance] poll_interval_s: expected a finite number, got nan"),
    ({"reaper": {"enabled": 1}}, "cfg.toml: [reaper] enabled: expected true or false, got 1 (integer)"),
    ({"redis": {"account": 7}}, "cfg.toml: [redis] account: expected a string, got 7 (integer)"),
    ({"binance": {"poll_interval_s": 0.0}}, "cfg.toml: [binance] poll_interval_s: must be >= 0.05, got 0.0"),
    ({"binance": {"recv_window_ms": 70000}},
     "cfg.toml: [binance] recv_window_ms: must be <= 60000, got 70000 "
     "(Binance rejects recvWindow above 60000)"),
])
def test_mistakes_are_one_exact_line(data: dict[str, Any], expected: str) -> None:
    assert str(error_for(data)) == expected


@pytest.mark.parametrize(("section", "key", "value", "fragment"), [
    ("binance", "rest_url", "ftp://fapi.binance.com", "expected a http:// or https:// URL"),
    ("binance", "rest_url", "https://", "the URL has no host"),
    ("binance", "rest_url", "https://fapi.binance.com/fapi?x=1", "bare base URL"),
    ("binance", "ws_url", "https://fstream.binance.com", "expected a ws:// or wss:// URL"),
    ("redis", "url", "localhost:6379", "expected a redis:// or rediss:// or unix:// URL"),
    ("redis", "url", "unix://", "needs a socket path"),
    ("redis", "account", "a{b}", "must match"),
    ("redis", "account", "x" * 65, "must match"),
    ("reaper", "client_id_prefix", "bad prefix!", "must match"),
    ("binance", "keepalive_interval_s", 3600, "must be <= 1800"),
    ("binance", "rotate_after_s", 86400, "must be < 86400"),
    # The reaper's policy is checked here only (core.reaper.ReaperPolicy is built from it).
    ("reaper", "grace_ms", -1, "must be >= 0"),
    ("reaper", "stuck_triggering_s", 0, "must be > 0"),
])
def test_values_are_range_and_scheme_checked(section: str, key: str, value: Any, fragment: str) -> None:
    error = error_for({section: {key: value}})
    assert (error.section, error.key) == (section, key)
    assert fragment in error.problem


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://r.example:6380/1",
                                 "unix:///run/redis/redis.sock", "redis://:pw@h:1/0"])
def test_redis_url_schemes_accepted(url: str) -> None:
    assert parse_config({"redis": {"url": url}}, "cfg.toml").redis.url == url


def test_base_urls_lose_a_trailing_slash() -> None:
    assert parse_config({"binance": {"rest_url": "https://fapi.binance.com/"}}, "c").binance.rest_url \
        == "https://fapi.binance.com"


@pytest.mark.parametrize(("data", "section", "key"), [
    ({"redis": {"heartbeat_interval_s": 5.0}}, "redis", "health_ttl_ms"),
    ({"veto": {"max_age_ms": 6000}}, "veto", "max_age_ms"),
    ({"binance": {"reconnect_min_delay_s": 60.0, "reconnect_max_delay_s": 10.0}}, "binance",
     "reconnect_min_delay_s"),
    ({"core": {"max_age_ms": 800}, "veto": {"max_age_ms": 500}}, "binance", "poll_interval_s"),
    ({"binance": {"poll_interval_s": 0.1, "fast_poll_interval_s": 0.1}}, "binance", "poll_interval_s"),
    # 0.9 s positions (333/min) + a sweep every 60 s (80/min) > 360: the sweep is what changed.
    ({"binance": {"orders_sweep_interval_s": 60.0}}, "binance", "orders_sweep_interval_s"),
    ({"stream": {"canary_interval_s": 60.0}}, "stream", "canary_symbol"),
    ({"stream": {"canary_interval_s": 9.0, "canary_symbol": "BTCUSDT"}}, "stream",
     "canary_interval_s"),
])
def test_relations_between_keys_are_checked(data: dict[str, Any], section: str, key: str) -> None:
    error = error_for(data)
    assert (error.section, error.key) == (section, key)


def test_weight_budget_is_not_applied_to_the_loopback_simulator() -> None:
    data = {"binance": {"rest_url": "http://127.0.0.1:8080", "poll_interval_s": 0.1,
                        "fast_poll_interval_s": 0.05}}
    assert parse_config(data, "cfg.toml").binance.poll_interval_s == 0.1


def test_redis_password_is_masked_in_repr_and_errors() -> None:
    config = parse_config({"redis": {"url": "redis://user:hunter2@h:1/0"}}, "cfg.toml")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.redis)
    assert redact_url("redis://user:hunter2@h:1/0") == "redis://user:***@h:1/0"
    assert "hunter2" not in str(error_for({"redis": {"url": "http://:hunter2@h:1/0"}}))


@pytest.mark.parametrize("data", [
    {"binance": {"api_key": "k"}},
    {"binance": {"api_secret": "s"}},
    {"api_key": "k"},
    {"credentials": {"API-SECRET": "s"}},
])
def test_secrets_in_the_file_are_refused_with_directions(data: dict[str, Any]) -> None:
    error = error_for(data)
    assert "BINANCE_API_KEY" in error.problem
    assert "LoadCredential" in error.problem


def test_toml_syntax_error_names_the_line_section_and_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[redis]\naccount = "main"\n\n[binance]\nrest_url = "https://x\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: [binance] rest_url: TOML syntax error at line 5, column")
    assert "\n" not in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: No such file"):
        load_config(tmp_path / "absent.toml")


# ---------------------------------------------------------------- [metrics]
# Off by default, loopback unless explicitly allowed, a usable textfile path.


def metrics_error(metrics: dict[str, Any]) -> str:
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
    message = metrics_error({"listen": listen})
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
    message = metrics_error({"listen": listen})
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize("path", ["metrics.prom", "/var/lib/node/wd.txt", "relative/wd.prom"])
def test_textfile_path_must_be_absolute_and_end_in_prom(path: str) -> None:
    assert "[metrics] textfile_path: expected an absolute path ending in .prom" in metrics_error(
        {"textfile_path": path})


def test_parse_listen() -> None:
    assert parse_listen("[::1]:9731") == ("::1", 9731)
    assert parse_listen("localhost:80") == ("localhost", 80)


# ---------------------------------------------------------------- credentials

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def test_credentials_from_environment_are_stripped() -> None:
    creds = load_credentials({"BINANCE_API_KEY": f" {KEY}\n", "BINANCE_API_SECRET": SECRET})
    assert creds == Credentials(KEY, SECRET)


def test_credentials_from_systemd_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "binance_api_key").write_text(KEY + "\n", encoding="utf-8")
    (tmp_path / "binance_api_secret").write_text(SECRET + "\n", encoding="utf-8")
    creds = load_credentials({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert creds == Credentials(KEY, SECRET)


def test_environment_wins_over_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "binance_api_key").write_text("fromfile", encoding="utf-8")
    (tmp_path / "binance_api_secret").write_text(SECRET, encoding="utf-8")
    creds = load_credentials({"BINANCE_API_KEY": KEY, "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert creds.api_key == KEY


def test_credentials_repr_and_str_never_show_them() -> None:
    creds = Credentials(KEY, SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds]), repr({"c": creds})):
        assert SECRET not in text
        assert KEY[:5] not in text
        assert SECRET[:4] not in text
    assert repr(creds) == f"Credentials(api_key='{KEY[:4]}…', api_secret=***)"


@pytest.mark.parametrize("environ", [
    {},
    {"BINANCE_API_KEY": KEY},
    {"BINANCE_API_KEY": "  ", "BINANCE_API_SECRET": SECRET},
])
def test_missing_credentials_say_how_to_provide_them(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_credentials(environ)
    assert "BINANCE_API_SECRET" in str(info.value)
    assert "CREDENTIALS_DIRECTORY" in str(info.value)
    assert SECRET not in str(info.value)


def test_credentials_with_inner_whitespace_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        load_credentials({"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": "abc def" + SECRET})
    assert info.value.key == "api_secret"
    assert SECRET not in str(info.value)


def test_sentinels_are_host_port_strings_and_come_with_a_master_name() -> None:
    config = parse_config({"redis": {"sentinels": ["10.0.0.1:26379", "[::1]:26380"],
                                     "sentinel_master": "wd"}}, "cfg.toml")
    assert config.redis.sentinels == ("10.0.0.1:26379", "[::1]:26380")
    assert config.redis.client_options() == {"sentinels": config.redis.sentinels,
                                             "sentinel_master": "wd", "cluster": False}
    assert "exclude each other" in str(error_for({"redis": {
        "sentinels": ["10.0.0.1:26379"], "sentinel_master": "wd", "cluster": True}}))
    assert "host:port" in str(error_for({"redis": {"sentinels": ["10.0.0.1"],
                                                   "sentinel_master": "wd"}}))
    assert "list of strings" in str(error_for({"redis": {"sentinels": "10.0.0.1:26379",
                                                         "sentinel_master": "wd"}}))
    assert "go together" in str(error_for({"redis": {"sentinels": ["10.0.0.1:26379"]}}))
    assert "go together" in str(error_for({"redis": {"sentinel_master": "wd"}}))


@pytest.mark.parametrize(("data", "expected_s"), [
    ({}, 0.9),                                                   # the default: calm is off
    ({"binance": {"idle_poll_interval_s": 2.0}}, 2.0),           # turned on
    ({"binance": {"idle_poll_interval_s": 2.0},
      "veto": {"max_age_ms": 1500}}, 1.0),                       # two thirds of the veto's age
    ({"binance": {"poll_interval_s": 3.0}, "veto": {"max_age_ms": 3000},
      "core": {"max_age_ms": 5000}}, 3.0),                       # never faster than the poll
    ({"binance": {"idle_poll_interval_s": 0.5}}, 0.9),
])
def test_the_calm_poll_interval_is_clamped_not_refused(data: dict[str, Any], expected_s: float) -> None:
    """A config that loaded before idle_poll_interval_s existed still loads (no new relation
    to refuse it); the calm pace never lets verified_ms age past [veto] max_age_ms."""
    assert calm_poll_interval_s(parse_config(data, "c.toml")) == pytest.approx(expected_s)
