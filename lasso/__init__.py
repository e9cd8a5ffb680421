"""Lasso: one fast, resilient JSON-RPC endpoint in front of many Ethereum providers."""

import time

__version__ = "0.1.0"

#: Monotonic time at process start (this package's first import), for uptime.
STARTED_MONOTONIC = time.monotonic()
