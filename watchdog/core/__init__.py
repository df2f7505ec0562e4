"""Sans-I/O core: synchronous, deterministic decisions. Inputs are events and ``now_ms``; outputs
are effects for the shell to run. Imports only the standard library (a test walks the imports)."""
