"""``position-watchdog sim``: one JSON line once listening; clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_urls_and_stops_on_signal(signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "sim", "--port", "0", "--api-key", "k1", "--api-secret", "s1",
         "--symbols", "BASUSDT,BTCUSDT"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the simulator listens (pytest-timeout guards)
        urls = json.loads(line)
        assert set(urls) == {"rest_url", "ws_url", "control_url"}
        assert urls["rest_url"].startswith("http://127.0.0.1:")
        assert urls["ws_url"] == urls["rest_url"].replace("http://", "ws://")
        info = httpx.get(urls["rest_url"] + "/fapi/v1/exchangeInfo", timeout=10).json()
        assert [s["symbol"] for s in info["symbols"]] == ["BASUSDT", "BTCUSDT"]
        key = httpx.post(urls["rest_url"] + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": "k1"}, timeout=10)
        assert "listenKey" in key.json()
        proc.send_signal(signum)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == ""  # exactly one line on stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
