"""How much upstream work one log filter may ask for: a size bound on its addresses and topics.

A filter with ten thousand addresses or OR-topics costs the node (and every provider it is
failed over to) far more than one request should. Lasso bounds the count, and only the
count: whether a filter is otherwise well formed is the node's business, so anything this
module cannot read (not JSON, not an object, odd field types) is passed through as is and
the node answers it exactly as it would without Lasso.

Counted per filter object: every ``address`` entry (a bare string counts one), and every
topic value in every position, each alternative of an OR-list counting one (``null``
counts none). The methods that carry a filter are ``eth_getLogs``, ``eth_newFilter`` and
``eth_subscribe`` with ``"logs"``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from lasso.errors import InvalidParams

__all__ = ["FILTER_METHODS", "check_filter_size", "filter_size_error", "log_filter_size_error"]

FILTER_METHODS: Final = frozenset({"eth_getLogs", "eth_newFilter"})
_MIN_ITEM_BYTES: Final = 3  # the shortest JSON array element: "" and a comma


def check_filter_size(method: str, params: bytes, max_addresses: int, max_topics: int) -> None:
    """Raise -32602 :class:`~lasso.errors.InvalidParams` for a too large log filter."""
    error = filter_size_error(method, params, max_addresses=max_addresses, max_topics=max_topics)
    if error is not None:
        raise InvalidParams(f"Invalid params: {error}")


def filter_size_error(
    method: str, params: bytes, *, max_addresses: int, max_topics: int
) -> str | None:
    """The -32602 message if this call's log filter is too large, else None.

    Cheap for every call: only ``eth_getLogs`` / ``eth_newFilter`` params are looked at,
    and only when they are long enough to hold more items than either bound allows.
    """
    if method not in FILTER_METHODS:
        return None
    if len(params) < _MIN_ITEM_BYTES * (min(max_addresses, max_topics) + 1):
        return None  # too short to name that many items
    try:
        decoded = msgspec.json.decode(params)
    except msgspec.DecodeError:
        return None  # malformed: the node answers it
    if not isinstance(decoded, list) or not decoded:
        return None
    return log_filter_size_error(decoded[0], max_addresses=max_addresses, max_topics=max_topics)


def log_filter_size_error(log_filter: object, *, max_addresses: int, max_topics: int) -> str | None:
    """The -32602 message if this (decoded) filter object names too many items, else None."""
    if not isinstance(log_filter, dict):
        return None
    addresses = _count(log_filter.get("address"))
    if addresses > max_addresses:
        return f"the log filter names {addresses} addresses; at most {max_addresses} are allowed"
    topics_value = log_filter.get("topics")
    topics = sum(map(_count, topics_value)) if isinstance(topics_value, list) else 0
    if topics > max_topics:
        return f"the log filter names {topics} topic values; at most {max_topics} are allowed"
    return None


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    return 0 if value is None else 1
