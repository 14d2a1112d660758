"""Typed settings and the TOML loader that validates a configuration once, at load."""
