"""Everything that knows Binance's paths, field names and error codes."""
