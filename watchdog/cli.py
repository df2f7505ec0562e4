"""Command line: ``position-watchdog run | status | events | check | orphans | sim | demo | config``.

This is the only module where errors become exit codes and user-facing one-line messages.
Each command's work lives in the module that owns it; imports are local so that a command
pulls in only what it needs (``config check`` must not import aiohttp or redis).
Over 400 lines on purpose: the commands, their options and their exit codes are one public
contract, read in one place; each command's body is a few lines that call its owner.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from watchdog import __version__
from watchdog.errors import (
    EXIT_CONFIG,
    ConfigError,
    config_problems,
)

if TYPE_CHECKING:
    from watchdog.config import Config

__all__ = ["main"]

_F = TypeVar("_F", bound=Callable[..., Any])
_DEFAULT_CONFIG = "/etc/position-watchdog/config.toml"


def _echo_config_error(exc: ConfigError, prefix: str = "Error: ") -> None:
    """Every problem of a config file, one line each (``PATH: [section] key: problem``)."""
    for problem in config_problems(exc):
        click.echo(f"{prefix}{problem}", err=True)


def _optional_config(command: _F) -> _F:
    """``--config`` for the read-only commands that also work without a config file."""
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), default=None,
        envvar="POSITION_WATCHDOG_CONFIG",
        help=f"The TOML config [default: $POSITION_WATCHDOG_CONFIG, else {_DEFAULT_CONFIG} "
             "if present].")(command)


def _load_optional_config(config_path: str | None, account: str = "") -> Config:
    """``config_path``, else the default file if present, else the defaults; a bad file exits
    78 with every problem on its own line. ``account``: one of the file's ``[[accounts]]``."""
    from pathlib import Path

    from watchdog.config import Config, load_config, one_account

    default = Path(_DEFAULT_CONFIG)
    try:
        if config_path is None and default.exists():
            config_path = str(default)
        if not config_path:
            return one_account(Config(), account) if account else Config()
        return one_account(load_config(config_path), account)
    except ConfigError as exc:
        _echo_config_error(exc)
        sys.exit(EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="position-watchdog")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--log-json", is_flag=True, help="One JSON object per log line (for collectors other than "
              "journald, which gets priority-prefixed lines by itself).")
@click.pass_context
def cli(ctx: click.Context, log_level: str, log_json: bool) -> None:
    """Safety sidecar for trading bots on Binance USDⓈ-M futures."""
    from watchdog.logs import configure_logging

    configure_logging(level=log_level.upper(), json=log_json)
    ctx.obj = {"log_json": log_json}


# ---------------------------------------------------------------- config


@cli.group()
def config() -> None:
    """Configuration helpers."""


@config.command("check")
@click.argument("path")
def config_check(path: str) -> None:
    """Validate PATH; exit 0 when valid, 2 otherwise."""
    from watchdog.config import load_config

    try:
        load_config(path)
    except ConfigError as exc:
        _echo_config_error(exc, prefix="")  # one line per problem: PATH: [section] key: problem
        sys.exit(2)
    click.echo(f"{path}: ok")


# ---------------------------------------------------------------- demo


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object on one line instead of the timeline.")
@click.pass_context
def demo(ctx: click.Context, as_json: bool) -> None:
    """Replay the BASUSDT incident on the simulator: without, then with the watchdog."""
    import asyncio
    import json

    from watchdog.demo.incident import run_demo
    from watchdog.demo.processes import DemoSetupError
    from watchdog.demo.result import render_summary
    from watchdog.demo.script import DemoFailed
    from watchdog.logs import configure_logging

    # The timeline is the output; the in-process simulator's INFO lines would bury it.
    if ctx.parent is not None and ctx.parent.params.get("log_level", "INFO").upper() == "INFO":
        configure_logging(level="WARNING", json=bool(ctx.parent.params.get("log_json")))

    try:
        result = asyncio.run(run_demo(echo=not as_json))
    except DemoFailed as exc:
        click.echo(f"Error: demo: {exc}", err=True)
        sys.exit(1)
    except DemoSetupError as exc:
        click.echo(f"Error: demo: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("demo interrupted; every process it started was stopped", err=True)
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(result.as_json(), separators=(",", ":")))
    else:
        click.echo(render_summary(result))
    sys.exit(0 if result.incident_prevented else 1)


# ---------------------------------------------------------------- sim


@cli.command("sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=0, show_default=True, type=int, help="TCP port; 0 picks a free one.")
@click.option("--api-key", default="sim-key", show_default=True, help="The account's API key.")
@click.option("--api-secret", default="sim-secret", show_default=True, help="The account's API secret.")
@click.option("--symbols", default="BTCUSDT,ETHUSDT,BASUSDT", show_default=True,
              help="Listed symbols, comma- or space-separated.")
@click.option("--time-scale", default=1.0, show_default=True, type=float,
              help="Divide Binance's long durations (listen key 60 min, 24 h cut, pings) by this.")
@click.option("--dual-side", is_flag=True, help="Start the account in hedge mode.")
def sim(host: str, port: int, api_key: str, api_secret: str, symbols: str, time_scale: float,
        dual_side: bool) -> None:
    """Run the Binance USDⓈ-M simulator; print one JSON line with its URLs once listening."""
    from watchdog.sim.cli import serve

    try:
        serve(host=host, port=port, api_key=api_key, api_secret=api_secret, symbols=symbols,
              time_scale=time_scale, dual_side=dual_side)
    except OSError as exc:
        click.echo(f"Error: simulator: cannot listen on {host}:{port}: {exc}", err=True)
        sys.exit(71)
    except ValueError as exc:
        click.echo(f"Error: simulator: {exc}", err=True)
        sys.exit(2)


# ---------------------------------------------------------------- check


@cli.command("check")
@click.argument("symbol")
@click.option("--side", default="BOTH", show_default=True,
              type=click.Choice(["BOTH", "LONG", "SHORT"], case_sensitive=False),
              help="BOTH in one-way mode, LONG/SHORT in hedge mode.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON line: verdict, reason, position, age_ms.")
@click.option("--config", "config_path", default="/etc/position-watchdog/config.toml", show_default=True,
              envvar="POSITION_WATCHDOG_CONFIG", type=click.Path(dir_okay=False),
              help="Config file (needs [redis] url/account and [veto] max_age_ms).")
def check(symbol: str, side: str, as_json: bool, config_path: str) -> None:
    """May SYMBOL's stop be touched? Exit 0 allow, 1 veto (watchdog down is a veto), 2 usage/config error."""
    import json

    from poswatch import check_position
    from watchdog.config import load_config, one_account

    try:
        cfg = one_account(load_config(config_path))
        verdict = check_position(cfg.redis.url, cfg.redis.account, symbol.upper(), side.upper(),
                                 max_age_ms=cfg.veto.max_age_ms, socket_timeout_s=cfg.redis.socket_timeout_s,
                                 **cfg.redis.client_options())
    except ConfigError as exc:
        _echo_config_error(exc)
        sys.exit(2)
    except ValueError as exc:
        click.echo(f"Error: {symbol}: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(verdict.as_json(), separators=(",", ":"), sort_keys=True))
    else:
        age = "unknown" if verdict.age_ms is None else f"{verdict.age_ms} ms"
        state = verdict.position.get("state", "none")
        click.echo(f"{'ALLOW' if verdict.allowed else 'VETO'} {symbol.upper()}:{side.upper()} "
                   f"reason={verdict.reason} state={state} age={age}")
    sys.exit(0 if verdict.allowed else 1)
# ---------------------------------------------------------------- run


@cli.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The TOML config (e.g. /etc/position-watchdog/config.toml).")
def run_command(config_path: str) -> None:
    """Run the watchdog daemon (systemd: Type=notify) until SIGTERM/SIGINT.

    Exit codes: 0 stopped on a signal; 78 bad config or credentials; 77 API key rejected;
    70 internal invariant broken; 1 any other fatal error. Always with a one-line reason.
    """
    import asyncio
    import signal

    from loguru import logger

    class StopRequested(Exception):
        """SIGTERM/SIGINT before the daemon's event loop took the signals over."""

    def stop_requested(signum: int, _frame: object) -> None:
        raise StopRequested(signal.Signals(signum).name)

    # Until run() installs the loop's handlers (its first step), a signal ends startup here:
    # exit 0 with a log line, as documented, instead of -15 and nothing said.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_requested)

    from watchdog.errors import EXIT_NOPERM, EXIT_SOFTWARE, AuthenticationFailed, InvariantViolation

    def leaves(exc: BaseException) -> list[BaseException]:
        if isinstance(exc, BaseExceptionGroup):
            return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
        return [exc]

    def describe(exc: BaseException) -> str:
        where = "; ".join(note for note in getattr(exc, "__notes__", ()) if note.startswith("task: "))
        return f"{exc}" + (f" ({where})" if where else "")

    try:
        from watchdog import logs
        from watchdog.config import load_account_credentials, load_config
        from watchdog.runtime.daemon import run

        config = load_config(config_path)
        credentials = load_account_credentials(config)
        for pair in credentials.values():
            for secret in (pair.api_key, pair.api_secret):
                logs.register_secret(secret)
        code = asyncio.run(run(config, credentials))
    except StopRequested as exc:
        logger.info("stopping on signal during startup ({}): nothing was started", exc)
        code = 0
    except Exception as exc:  # noqa: BLE001 -- the one catch-all: log, map, exit
        found = leaves(exc)
        for leaf in found:
            logger.opt(exception=leaf).debug("fatal: {}", type(leaf).__name__)
        ranked = [(EXIT_CONFIG, ConfigError, "bad configuration"),
                  (EXIT_NOPERM, AuthenticationFailed,
                   "Binance rejected the API key (or its secret); check the key, its secret, "
                   "its futures permission and its IP whitelist"),
                  (EXIT_SOFTWARE, InvariantViolation, "internal invariant broken (a bug)")]
        code, reason = 1, f"fatal: {type(found[0]).__name__}: {describe(found[0])}"
        reasons = [reason]
        for exit_code, kind, what in ranked:
            match = next((leaf for leaf in found if isinstance(leaf, kind)), None)
            if match is not None:
                # Every problem of a config file at once, one line each.
                parts = config_problems(match) if isinstance(match, ConfigError) else (match,)
                code, reasons = exit_code, [f"{what}: {describe(part)}" for part in parts]
                break
        from watchdog.logs import for_stderr

        for reason in reasons:
            logger.error("exiting with code {}: {}", code, reason)
            click.echo(for_stderr(f"Error: {reason}"), err=True)  # <3> under journald
    sys.exit(code)


# ---------------------------------------------------------------- status


@cli.command("status")
@click.option("--watch", is_flag=True, expose_value=False,
              callback=lambda ctx, _param, value: ctx.meta.__setitem__("status_watch", value),
              help="Redraw in place every second until Ctrl-C (with --json: one line a second); "
                   "exits with the last status's code.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on one line (docs/STATUS.md).")
@click.option("--account", default="", metavar="NAME",
              help="With [[accounts]] in the file: the account to show (one per call).")
@_optional_config
def status_command(as_json: bool, account: str, config_path: str | None) -> None:
    """Is the watchdog alive, and what does it know? Exit 0 healthy, 1 degraded, 2 down."""
    import json

    from watchdog.ops.status import read_status
    from watchdog.ops.status_view import render_text

    config = _load_optional_config(config_path, account)
    if click.get_current_context().meta.get("status_watch"):
        from watchdog.ops.live import status_frames, watch

        sys.exit(watch(status_frames(config.redis.url, config.redis.account, as_json=as_json,
                                     socket_timeout_s=config.redis.socket_timeout_s,
                                     **config.redis.client_options()), ansi=not as_json))
    report = read_status(config.redis.url, config.redis.account,
                         socket_timeout_s=config.redis.socket_timeout_s, **config.redis.client_options())
    click.echo(json.dumps(report.to_json(), separators=(",", ":")) if as_json else render_text(report))
    sys.exit(report.exit_code)


# ---------------------------------------------------------------- events


@cli.command("events")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--count", "-n", default=20, show_default=True, type=click.IntRange(min=0),
              help="How many of the newest events to print first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (id, at, the fields).")
@_optional_config
def events(follow: bool, count: int, as_json: bool, config_path: str | None) -> None:
    """The watchdog's events stream with UTC times, oldest first. Exit 0; 2 Redis unreachable;
    78 bad config. With --follow, a Redis outage is reported and waited out."""
    import redis
    from redis import exceptions as redis_errors

    from watchdog.ops.live import event_json, event_line, follow_events, recent_events
    from watchdog.store.keys import AccountKeys

    config = _load_optional_config(config_path)
    keys = AccountKeys(config.redis.account)
    timeout_s = config.redis.socket_timeout_s
    # The read timeout outlasts XREAD's 1 s block.
    if config.redis.sentinels or config.redis.cluster:
        from poswatch.connection import connect_sync

        client = connect_sync(config.redis.url, socket_timeout_s=timeout_s + 1.0,
                              client_name="position-watchdog-events", **config.redis.client_options())
    else:
        client = redis.Redis.from_url(config.redis.url, decode_responses=True,
                                      socket_timeout=timeout_s + 1.0, socket_connect_timeout=timeout_s)
    show = event_json if as_json else event_line

    def outage(exc: Exception | None) -> None:
        click.echo(f"redis {keys.events}: {type(exc).__name__}: {exc}; retrying every second"
                   if exc is not None else f"redis {keys.events}: reachable again", err=True)

    try:
        shown = recent_events(client, keys, count)
        for entry_id, fields in shown:
            click.echo(show(entry_id, fields))
        if follow:
            last_id = shown[-1][0] if shown else (recent_events(client, keys, 1) or [("0-0", {})])[-1][0]
            for entry_id, fields in follow_events(client, keys, last_id, on_outage=outage):
                click.echo(show(entry_id, fields))
    except redis_errors.RedisError as exc:
        click.echo(f"Error: redis {keys.events}: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()


# ---------------------------------------------------------------- orphans


@cli.command("orphans")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on one line (docs/REAPER.md).")
@click.option("--config", "config_path", default="/etc/position-watchdog/config.toml", show_default=True,
              envvar="POSITION_WATCHDOG_CONFIG", type=click.Path(dir_okay=False),
              help="Config file ([binance], [redis], [core], [reaper]).")
@click.option("--symbol", "symbols", multiple=True,
              help="Also list this symbol as read (repeatable). Kept for scripts: every symbol's "
                   "orders are read anyway (the all-symbols read of the daemon's sweep).")
def orphans(as_json: bool, config_path: str, symbols: tuple[str, ...]) -> None:
    """Orders the reaper would remove now, and why every other open order stays. Cancels nothing.

    Exit 0 when the listing was made; 78 bad config or credentials; 77 API key rejected;
    1 Binance could not be read.
    """
    import asyncio

    from watchdog import logs
    from watchdog.config import load_account_credentials, load_config, one_account
    from watchdog.core.model import Symbol
    from watchdog.errors import EXIT_NOPERM, AuthenticationFailed, ExchangeError
    from watchdog.ops.orphans import collect, render_json, render_text

    try:
        full = load_config(config_path)
        cfg = one_account(full)
        credentials = load_account_credentials(full)[cfg.redis.account]
        for secret in (credentials.api_key, credentials.api_secret):
            logs.register_secret(secret)
        report = asyncio.run(collect(cfg, credentials, symbols=[Symbol(s.upper()) for s in symbols]))
    except ConfigError as exc:
        _echo_config_error(exc)
        sys.exit(EXIT_CONFIG)
    except AuthenticationFailed as exc:
        click.echo(f"Error: Binance rejected the API key (or its secret; check the key, its "
                   f"permission and its IP whitelist): {exc}", err=True)
        sys.exit(EXIT_NOPERM)
    except ExchangeError as exc:
        click.echo(f"Error: Binance could not be read: {exc}", err=True)
        sys.exit(1)
    click.echo(render_json(report) if as_json else render_text(report))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="position-watchdog")


if __name__ == "__main__":
    main()
