"""`position-watchdog demo`: the BASUSDT incident replayed without and with the watchdog."""
