"""Binance USDⓈ-M adapters: pure wire translation and signing, plus the REST/stream shells."""
