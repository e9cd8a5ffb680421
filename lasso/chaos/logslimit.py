"""A provider's ``eth_getLogs`` block-range limit, as a fault proxy enforces it.

Real providers refuse a range wider than their limit with their own wording; the
default here is geth's (``--rpc.rangelimit``): code -32000,
"exceed maximum block range: N", refused when ``toBlock - fromBlock > N``. Only
ranges given as hex numbers (and ``earliest``) are judged; a range with another tag
is forwarded, as the proxy does not know the head. Pure: the proxy asks
:meth:`LogsRangeLimit.refusal` for each request body.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["LogsRangeLimit"]


class LogsRangeLimit(msgspec.Struct, frozen=True, kw_only=True):
    """Refuse ``eth_getLogs`` spanning more than ``max_range`` blocks past ``fromBlock``.

    ``message`` may use ``{limit}``; ``inclusive`` counts blocks instead
    (refused when ``toBlock - fromBlock + 1 > max_range``, as Alchemy words it).
    """

    max_range: int
    code: int = -32000
    message: str = "exceed maximum block range: {limit}"
    inclusive: bool = False

    def refusal(self, body: bytes) -> bytes | None:
        """The JSON-RPC error answer for a too-wide single ``eth_getLogs``; else None."""
        try:
            request = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return None
        if not isinstance(request, dict) or request.get("method") != "eth_getLogs":
            return None
        span = _span(request.get("params"))
        if span is None or span + (1 if self.inclusive else 0) <= self.max_range:
            return None
        error = {"code": self.code, "message": self.message.format(limit=self.max_range)}
        return msgspec.json.encode({"jsonrpc": "2.0", "id": request.get("id"), "error": error})


def _span(params: Any) -> int | None:
    """``toBlock - fromBlock`` of a filter with numeric bounds; None otherwise."""
    if not isinstance(params, list) or not params or not isinstance(params[0], dict):
        return None
    bounds = [_number(params[0].get(key)) for key in ("fromBlock", "toBlock")]
    if bounds[0] is None or bounds[1] is None:
        return None
    return bounds[1] - bounds[0]


def _number(tag: Any) -> int | None:
    if tag == "earliest":
        return 0
    if isinstance(tag, str) and tag.startswith("0x"):
        try:
            return int(tag, 16)
        except ValueError:
            return None
    return None
