"""Logging: secrets never reach stderr, whichever route a line takes (loguru, stdlib, JSON,
traceback): docs/RULES.md rule 4."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from watchdog import logs
from watchdog.logs import configure_logging, redact, register_secret

LISTEN_KEY = "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"
SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
API_KEY = "Qx3kT9vLpW2mN8rY5zA1bC4dE7fG0hJ6kL9mN2pR5sT8uV1wX4yZ7aB0cD3eF6gH"
SHORT_SECRET = "hunter2-only-the-daemon-knows"


@pytest.fixture(autouse=True, scope="module")
def _forget_test_secrets() -> Iterator[None]:
    """Secrets registered here (some random) must not mask other modules' log lines."""
    saved = set(logs._permanent), list(logs._transient), logs._secrets_re
    yield
    logs._permanent.clear()
    logs._permanent.update(saved[0])
    logs._transient[:] = saved[1]
    logs._secrets_re = saved[2]


@pytest.fixture
def stderr_log(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging(level="DEBUG", json=False)
    yield capsys
    _reset()


@pytest.fixture
def json_log(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging(level="DEBUG", json=True)
    yield capsys
    _reset()


def _reset() -> None:
    if logs._handler_id is not None:
        logger.remove(logs._handler_id)
        logs._handler_id = None
    logger.configure(patcher=None)


def leaky_lines() -> list[str]:
    return [
        f"GET https://fapi.binance.com/fapi/v3/positionRisk?timestamp=1&signature={SIGNATURE}",
        f"headers={{'X-MBX-APIKEY': '{API_KEY}', 'accept': '*/*'}}",
        f"X-MBX-APIKEY: {API_KEY}",
        f"(b'x-mbx-apikey', b'{API_KEY}')",
        f"connecting to wss://fstream.binance.com/private/ws?listenKey={LISTEN_KEY}&events=ACCOUNT_UPDATE",
        f'payload {{"e": "listenKeyExpired", "E": "1736996475556", "listenKey": "{LISTEN_KEY}"}}',
        f"listenKey: {LISTEN_KEY}",
        f"listenKey rotated, new one is {LISTEN_KEY[:40]}",
        f"> GET /ws/{LISTEN_KEY} HTTP/1.1",
        f'{{"stream":"{LISTEN_KEY}","data":{{"e":"ORDER_TRADE_UPDATE"}}}}',
    ]


@pytest.mark.parametrize("line", leaky_lines())
def test_redact_masks_signatures_api_keys_and_listen_keys(line: str) -> None:
    cleaned = redact(line)
    for secret in (LISTEN_KEY[:40], SIGNATURE, API_KEY):
        assert secret not in cleaned
    assert logs.MASK in cleaned


@pytest.mark.parametrize("line", [
    "position BTCUSDT:LONG open amount=0.010 version=7",
    'event {"e": "listenKeyExpired", "E": 1736996475556}',
    "positions=3 suspect=0 stream=live last_event_age_s=0.4 rest_failures=0",
])
def test_redact_leaves_ordinary_lines_alone(line: str) -> None:
    assert redact(line) == line


def test_registered_secret_is_masked_anywhere() -> None:
    register_secret(SHORT_SECRET)
    assert redact(f"x{SHORT_SECRET}y and again {SHORT_SECRET}") == "x***y and again ***"


def test_loguru_message_and_bound_context_are_redacted(stderr_log: pytest.CaptureFixture[str]) -> None:
    logger.bind(url=f"https://x/?signature={SIGNATURE}").info("stream at ?listenKey={}", LISTEN_KEY)
    err = stderr_log.readouterr().err
    assert "stream at ?listenKey=***" in err
    assert "url=https://x/?signature=***" in err
    assert LISTEN_KEY not in err
    assert SIGNATURE not in err


def test_stdlib_logging_is_routed_in_and_redacted(stderr_log: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("some.library").warning("request failed: %s", f"&signature={SIGNATURE}")
    err = stderr_log.readouterr().err
    assert "request failed: &signature=***" in err
    assert SIGNATURE not in err


def test_noisy_libraries_are_quietened(stderr_log: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET https://fapi.binance.com/?signature=%s", "abc")
    logging.getLogger("httpcore.http11").debug("send_request_headers.started")
    logging.getLogger("websockets.client").debug("> GET /private/ws?listenKey=abc")
    logging.getLogger("websockets.client").info("connection open")
    logging.getLogger("httpx").warning("httpx warning shown")
    err = stderr_log.readouterr().err
    assert "HTTP Request" not in err
    assert "send_request_headers" not in err
    assert "> GET" not in err
    assert "connection open" in err
    assert "httpx warning shown" in err


def test_exception_text_is_redacted(stderr_log: pytest.CaptureFixture[str]) -> None:
    register_secret(SHORT_SECRET)
    try:
        raise ValueError(f"bad response for ?listenKey={LISTEN_KEY} with {SHORT_SECRET}")
    except ValueError:
        logger.exception("poll failed")
    try:
        raise RuntimeError(f"signature={SIGNATURE}")
    except RuntimeError:
        logging.getLogger("some.library").exception("stdlib route")
    err = stderr_log.readouterr().err
    assert "ValueError: bad response for ?listenKey=*** with ***" in err
    assert "RuntimeError: signature=***" in err
    for secret in (LISTEN_KEY, SHORT_SECRET, SIGNATURE):
        assert secret not in err


def test_tracebacks_do_not_show_local_variables(stderr_log: pytest.CaptureFixture[str]) -> None:
    def sign() -> None:
        api_secret = "unregistered-local-secret"
        raise KeyError(len(api_secret))

    try:
        sign()
    except KeyError:
        logger.exception("signing failed")
    err = stderr_log.readouterr().err
    assert "KeyError" in err
    assert "unregistered-local-secret" not in err


def test_json_mode_is_one_object_per_line_and_redacted(json_log: pytest.CaptureFixture[str]) -> None:
    logger.bind(symbol="BTCUSDT").info("keepalive for listenKey={}", LISTEN_KEY)
    try:
        raise ValueError(f'rejected {{"listenKey": "{LISTEN_KEY}"}} X-MBX-APIKEY: {API_KEY}')
    except ValueError:
        logger.exception("failed")
    logging.getLogger("some.library").error("stdlib signature=%s", SIGNATURE)
    out = json_log.readouterr().err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert records[0]["record"]["message"] == "keepalive for listenKey=***"
    assert records[0]["record"]["extra"] == {"symbol": "BTCUSDT"}
    assert records[1]["record"]["exception"]["type"] == "ValueError"
    assert records[2]["record"]["message"] == "stdlib signature=***"
    for secret in (LISTEN_KEY, API_KEY, SIGNATURE):
        assert secret not in out


def test_reconfiguring_keeps_other_sinks_and_replaces_ours(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    sink_id = logger.add(seen.append, format="{message}")
    try:
        configure_logging(level="INFO")
        configure_logging(level="INFO")
        logger.info("once")
        assert capsys.readouterr().err.count("once") == 1
        assert seen == ["once\n"]
    finally:
        logger.remove(sink_id)
        _reset()


def test_level_filters(stderr_log: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="WARNING")
    logger.info("hidden")
    logging.getLogger("some.library").info("hidden too")
    logger.warning("shown")
    err = stderr_log.readouterr().err
    assert "hidden" not in err
    assert "shown" in err


def test_transient_secrets_are_capped_but_permanent_ones_stay() -> None:
    register_secret("permanent-api-key-value")
    keys = [f"listen{i:03d}key" for i in range(logs.MAX_TRANSIENT + 5)]
    for key in keys:
        register_secret(key, transient=True)
    assert redact("permanent-api-key-value") == logs.MASK
    assert redact(keys[-1]) == logs.MASK
    assert redact(keys[0]) == keys[0]


@given(secret=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=8, max_size=80),
       before=st.text(max_size=40), after=st.text(max_size=40))
def test_a_registered_secret_never_survives_redaction(secret: str, before: str, after: str) -> None:
    register_secret(secret, transient=True)
    assert secret not in redact(before + secret + after)


@given(key=st.text(st.sampled_from("ABCDEFabcdef0123456789xyzXYZ"), min_size=16, max_size=64),
       form=st.sampled_from(["?listenKey={}&x=1", '"listenKey": "{}"', "listenKey: {}", "/ws/{}",
                             "signature={}", "X-MBX-APIKEY: {}", "'X-MBX-APIKEY': '{}'"]))
def test_labelled_tokens_never_survive_redaction(key: str, form: str) -> None:
    assert key not in redact("prefix " + form.format(key) + " suffix")


@pytest.mark.parametrize("line", [
    "POST /fapi/v1/listenKey: Binance code -2015: Invalid API-key, IP, or permissions for action.",
    "PUT /fapi/v1/listenKey: HTTP 400 code -1125: This listenKey does not exist.",
    "listenKey: refused by Binance",
    "X-MBX-APIKEY: header missing",
    "signature: not valid for this request",
    "listen_key=expired, reconnecting",
])
def test_labels_followed_by_words_stay_readable(line: str) -> None:
    """Mask values, not words: an error about the listen key or the signature must stay legible."""
    assert redact(line) == line


@pytest.mark.parametrize("form", ["POST /fapi/v1/listenKey: {} code -2015", "listenKey: {}",
                                  "X-MBX-APIKEY: {}", "signature={}"])
def test_values_after_labels_are_still_masked(form: str) -> None:
    for value in (LISTEN_KEY, API_KEY, SIGNATURE, "0123456789abcdefABCD"):
        assert value not in redact(form.format(value))
