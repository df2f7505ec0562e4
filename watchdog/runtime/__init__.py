"""The imperative shell: clocks, systemd notifications, and the daemon that wires the adapters."""
