"""The imperative shell: the clock, systemd notifications, and the daemon that wires the adapters."""
