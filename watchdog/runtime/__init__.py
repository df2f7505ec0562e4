"""The daemon: the imperative shell's tasks, systemd notifications, and the wiring of the adapters."""
