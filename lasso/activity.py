"""What the gateway is doing right now: calls in flight, client WebSockets open.

Two plain counters the front end and the gateway move as work starts and ends
(an integer add each, so the hot path does not notice), read by ``/metrics``
through :meth:`Activity.statistics`.
"""

from __future__ import annotations

import msgspec

__all__ = ["Activity", "ActivityStatistics"]


class ActivityStatistics(msgspec.Struct, frozen=True):
    calls: int
    websockets: int


class Activity:
    """Work in progress; the gateway owns one (``gateway.activity``)."""

    __slots__ = ("calls", "websockets")

    def __init__(self) -> None:
        #: JSON-RPC calls being answered (each batch item counts).
        self.calls = 0
        #: Client WebSocket connections open.
        self.websockets = 0

    def statistics(self) -> ActivityStatistics:
        return ActivityStatistics(self.calls, self.websockets)
