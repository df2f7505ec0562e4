"""The imperative shell: clocks, polling/pumping glue and the daemon that wires the adapters."""
