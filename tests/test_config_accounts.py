"""``[[accounts]]``: several accounts in one file (docs/CONFIG.md); a file without it means one
account, ``[redis] account``, with today's credential names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchdog.config import (
    AccountConfig,
    Config,
    account_configs,
    load_account_credentials,
    one_account,
    parse_config,
)
from watchdog.errors import ConfigError

KEY, SECRET = "k" * 64, "s" * 64
# Two accounts' positions polls at 0.9 s are 667 weight/min: over the default 15% of the IP.
ROOM = {"weight_budget_pct": 30}


def error_for(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg.toml")
    return str(info.value)


def test_a_file_without_accounts_is_one_account_with_todays_credentials() -> None:
    config = parse_config({"redis": {"account": "bot2"}}, "cfg.toml")
    assert config.accounts == ()
    assert account_configs(config) == [config]
    assert one_account(config) is config
    creds = load_account_credentials(config, {"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET})
    assert list(creds) == ["bot2"]
    assert creds["bot2"].api_key == KEY


def test_each_account_is_a_config_with_its_name_as_the_redis_account() -> None:
    config = parse_config({"accounts": [{"name": "main"}, {"name": "sub-1"}],
                           "binance": {"poll_interval_s": 2.0}}, "cfg.toml")
    configs = account_configs(config)
    assert [c.redis.account for c in configs] == ["main", "sub-1"]
    assert all(c.accounts == () and c.binance == config.binance for c in configs)


def test_credentials_per_account_from_env_names_and_systemd_files(tmp_path: Path) -> None:
    config = parse_config({"accounts": [{"name": "main"},
                                        {"name": "sub-1", "api_key_env": "SUB_KEY"}],
                           "binance": ROOM}, "cfg.toml")
    (tmp_path / "binance_api_secret_sub-1").write_text(SECRET + "2\n")
    creds = load_account_credentials(config, {
        "BINANCE_API_KEY_MAIN": KEY, "BINANCE_API_SECRET_MAIN": SECRET, "SUB_KEY": KEY + "2",
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "BINANCE_API_KEY": "unused", "BINANCE_API_SECRET": "unused"})
    assert (creds["main"].api_key, creds["sub-1"].api_key) == (KEY, KEY + "2")
    assert creds["sub-1"].api_secret == SECRET + "2"


def test_missing_credentials_of_one_account_name_it_and_never_show_a_value() -> None:
    config = parse_config({"accounts": [{"name": "a"}, {"name": "b"}], "binance": ROOM}, "cfg.toml")
    with pytest.raises(ConfigError) as info:
        load_account_credentials(config, {"BINANCE_API_KEY_A": KEY, "BINANCE_API_SECRET_A": SECRET,
                                          "BINANCE_API_KEY_B": KEY})
    assert "accounts b" in str(info.value)
    assert "BINANCE_API_SECRET_B" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(("data", "says"), [
    ({"accounts": []}, "at least one account"),
    ({"accounts": {"name": "a"}}, "array of tables"),
    ({"accounts": [{"api_key_env": "X"}]}, "every account needs a name"),
    ({"accounts": [{"name": "a b"}]}, "must match"),
    ({"accounts": [{"name": "a"}, {"name": "a"}], "binance": ROOM}, "listed twice"),
    ({"accounts": [{"name": "a", "nmae": 1}]}, "unknown key"),
    ({"accounts": [{"name": "a", "api_secret": "x"}]}, "secrets do not belong"),
    ({"accounts": [{"name": "a"}], "redis": {"account": "b"}}, "not both"),
    ({"accounts": [{"name": "a"}, {"name": "b"}], "binance": ROOM,
      "metrics": {"listen": "127.0.0.1:9731"}},
     "not available with [[accounts]]"),
    # Binance's limit is the IP's: 2 accounts at 0.9 s are 667 weight/min of positionRisk.
    ({"accounts": [{"name": "a"}, {"name": "b"}]}, "for 2 accounts on one IP"),
])
def test_bad_accounts_are_refused_with_one_line(data: dict[str, Any], says: str) -> None:
    message = error_for(data)
    assert says in message
    assert "\n" not in message


def test_a_reading_command_refuses_a_file_of_several_accounts() -> None:
    config = Config(accounts=(AccountConfig("a"), AccountConfig("b")))
    with pytest.raises(ConfigError, match="reads one"):
        one_account(config)
    assert one_account(Config(accounts=(AccountConfig("a"),))).redis.account == "a"


def test_a_reading_command_may_name_one_of_several_accounts() -> None:
    config = Config(accounts=(AccountConfig("a"), AccountConfig("b")))
    assert one_account(config, "b").redis.account == "b"
    with pytest.raises(ConfigError, match="no such account"):
        one_account(config, "c")
    assert one_account(Config(), "main") == Config()


def test_any_loopback_simulator_url_is_exempt_from_the_ip_weight_check() -> None:
    """The simulator has no weight limit, on 127.0.0.1 or on a bench's second "host"."""
    for host in ("127.0.0.1", "127.0.0.2", "localhost"):
        config = parse_config({"accounts": [{"name": f"a{i}"} for i in range(10)],
                               "binance": {"rest_url": f"http://{host}:8080"}}, "t.toml")
        assert len(config.accounts) == 10
    assert "for 10 accounts on one IP" in error_for(
        {"accounts": [{"name": f"a{i}"} for i in range(10)],
         "binance": {"rest_url": "https://fapi.binance.com"}})
