"""position-watchdog: a safety sidecar for Binance USDⓈ-M futures trading bots."""

__version__ = "0.1.0"

# Lets tests (and operators) prove that `import watchdog` is this project and not the
# filesystem-events library of the same import name on PyPI.
DISTRIBUTION = "binance-position-watchdog"

__all__ = ["DISTRIBUTION", "__version__"]
