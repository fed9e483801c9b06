"""The HTTP API (DESIGN §4): one app factory, thin routes, one exception-to-status table."""
