"""The imperative shell: clocks, polling glue, systemd notifications and the daemon that wires the adapters."""
