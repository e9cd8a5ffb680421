"""The fault vocabulary: what a misbehaving node can do to one request.

:class:`~lasso.chaos.faultproxy.FaultProxy` puts these faults on the wire in
front of a real node; the in-memory fake nodes of the test suite
(``tests/support/fakes.py``) script the same names, so a scenario reads the same
against either.
"""

from __future__ import annotations

from enum import Enum


class Fault(Enum):
    HTML_500 = "html_500"
    RESET = "reset"
    FORWARD_THEN_RESET = "forward_then_reset"
    REFUSED = "refused"
    HANG = "hang"
    TRUNCATED_JSON = "truncated_json"
    WRONG_ID = "wrong_id"
    RATE_LIMITED_429 = "rate_limited_429"
    METHOD_NOT_FOUND = "method_not_found"
    REVERT = "revert"
