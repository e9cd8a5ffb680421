"""An eth_getLogs limit for the fault proxy: what a limited provider refuses, and how.

With ``logs_limit`` set (a :class:`LogsLimit`, off by default) the
:class:`~lasso.chaos.faultproxy.FaultProxy` is a provider with an ``eth_getLogs``
limit, answering as real providers word it (:data:`LOGS_LIMIT_MESSAGES`): a range
of more than ``max_blocks`` blocks (tags resolved against the node's head) is
refused without forwarding; with ``max_results`` the answer is forwarded and
refused if it holds more logs; a range holding ``reset_block`` gets a TCP RST (a
node that dies on those logs).

The decisions are synchronous (:meth:`LogsLimit.verdict`,
:meth:`LogsLimit.refuses_answer`) and the proxy acts on them; :func:`logs_window`
reads a request's block range, asking the node's head for tags.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

__all__ = [
    "LOGS_LIMIT_MESSAGES",
    "LOGS_RANGE_REFUSED",
    "LOGS_RESET",
    "LOGS_RESULTS_REFUSED",
    "LogsLimit",
    "log_count",
    "logs_limit",
    "logs_window",
]

#: The injected-fault names the proxy counts in its statistics.
LOGS_RESET = "logs_reset"
LOGS_RANGE_REFUSED = "logs_range_refused"
LOGS_RESULTS_REFUSED = "logs_results_refused"

#: Real providers' eth_getLogs refusals: (code, message); ``{limit}`` is the limit.
LOGS_LIMIT_MESSAGES: dict[str, tuple[int, str]] = {
    "alchemy": (
        -32602,
        "Log response size exceeded. You can make eth_getLogs requests with up to a {limit} "
        "block range and no limit on the response size, or you can request any block range "
        "with a cap of 10K logs in the response.",
    ),
    "infura": (-32005, "query returned more than {limit} results"),
    "quicknode": (-32614, "eth_getLogs is limited to a {limit} range"),
    "geth": (-32000, "exceed maximum block range: {limit}"),
    "ankr": (-32000, "block range is too wide"),
    "range-too-large": (-32000, "range too large, max range: {limit}"),
    "range-too-large-bare": (-32000, "requested range too large"),
}

_TAGS_AT_HEAD = (None, "latest", "pending", "safe", "finalized")


class LogsLimit(msgspec.Struct, frozen=True):
    """An eth_getLogs limit to enforce, and the error a refusal gets."""

    code: int
    message: str
    max_blocks: int | None = None
    max_results: int | None = None
    reset_block: int | None = None

    def verdict(self, window: tuple[int, int]) -> str | None:
        """What a request for blocks ``window`` gets before it is forwarded:
        :data:`LOGS_RESET` (a TCP RST), :data:`LOGS_RANGE_REFUSED` (the refusal), or
        None (forward it)."""
        low, high = window
        if self.reset_block is not None and low <= self.reset_block <= high:
            return LOGS_RESET
        if self.max_blocks is not None and high - low + 1 > self.max_blocks:
            return LOGS_RANGE_REFUSED
        return None

    def refuses_answer(self, body: bytes) -> bool:
        """Whether the node's answer holds more logs than ``max_results``."""
        return self.max_results is not None and log_count(body) > self.max_results


def logs_limit(provider: str, limit: int | None = None, **kwargs: Any) -> LogsLimit:
    """``provider``'s real refusal (:data:`LOGS_LIMIT_MESSAGES`) for ``limit``: blocks,
    or results for ``infura`` (whose message counts logs)."""
    code, template = LOGS_LIMIT_MESSAGES[provider]
    message = template.format(limit=limit)
    if provider == "infura":
        return LogsLimit(code, message, max_results=limit, **kwargs)
    return LogsLimit(code, message, max_blocks=limit, **kwargs)


async def logs_window(body: bytes, head: Callable[[], Awaitable[int]]) -> tuple[int, int] | None:
    """An eth_getLogs request's block range, tags read against ``head()`` as a node
    does; None when it is not a range (a ``blockHash`` query, or params it cannot read)."""
    try:
        request = msgspec.json.decode(body)
        (query,) = request["params"]
        ends = [query.get("fromBlock"), query.get("toBlock")]
    except (msgspec.DecodeError, TypeError, ValueError, KeyError, AttributeError):
        return None
    if "blockHash" in query:
        return None
    numbers = []
    for end in ends:
        if end == "earliest":
            numbers.append(0)
        elif end in _TAGS_AT_HEAD:
            numbers.append(await head())
        elif isinstance(end, str) and end.startswith("0x"):
            numbers.append(int(end, 16))
        else:
            return None
    return numbers[0], numbers[1]


def log_count(body: bytes) -> int:
    """How many logs a JSON-RPC eth_getLogs answer holds (0 for an error)."""
    try:
        answer = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
        return len(msgspec.json.decode(answer.get("result", b"[]"), type=list[msgspec.Raw]))
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0
