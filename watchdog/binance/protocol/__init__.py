"""Binance's protocol without I/O: wire parsing, signing, answer classification, reconnect
policy, poll schedule and weight budget. No socket, HTTP client, Redis or event loop here
(tests/binance/protocol/test_layering.py); the shells in ``watchdog.binance`` run them."""
