"""How the front end reports a request that failed by our own bug: one log line.

A hostile client can trigger the same failure thousands of times a second, so
it costs one line each, never a traceback per request; the traceback is logged
only when DEBUG is on, for whoever is chasing the bug.
"""

from __future__ import annotations

import logging


def log_internal(log: logging.Logger, where: str, exc: BaseException) -> None:
    detail = str(exc)[:200]
    log.error(
        "internal error %s: %s: %s",
        where,
        type(exc).__name__,
        detail,
        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
    )
