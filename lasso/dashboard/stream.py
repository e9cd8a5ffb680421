"""The live feed: Server-Sent Events carrying one JSON snapshot per interval.

Theory of operation. ``GET /dashboard/events`` answers ``text/event-stream`` with a
body that is an async generator (quart-trio sends each item as one HTTP chunk):

* a ``retry:`` hint and a snapshot at once, then one snapshot every ``interval_s``;
* the stream ends by itself after ``max_stream_s`` (the browser's EventSource
  reconnects after the ``retry:`` delay), and at once when the daemon starts to
  drain, so an open dashboard tab never holds a shutdown for its grace period;
* a client that hangs up: quart-trio cancels the response on ``http.disconnect``,
  the generator is cancelled at its sleep and closed (quart ``aclose``\\ s it), and
  its slot is given back in ``finally``;
* a client that stops reading: each item is awaited into the socket (hypercorn
  has no queue of its own; Lasso's server gives every write a deadline,
  ``ws_send_timeout_ms``, then aborts the connection), so at most one snapshot is
  ever pending per stream and nothing buffers without bound;
* at most ``limit`` streams at once: the route answers 503 beyond that.

The snapshot bytes are shared: built at most once per ``interval_s / 2`` whatever
the number of streams (:class:`SnapshotCache`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import trio

__all__ = ["SnapshotCache", "Streams", "sse_frame"]


def sse_frame(data: bytes, event: str = "snapshot") -> bytes:
    """One SSE message. ``data`` is single-line JSON (msgspec never writes a newline)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class SnapshotCache:
    """The encoded snapshot, rebuilt when older than ``max_age_s`` (trio's clock)."""

    def __init__(self, build: Callable[[], bytes], max_age_s: float) -> None:
        self._build = build
        self.max_age_s = max_age_s
        self._bytes = b""
        self._at = -float("inf")
        self.builds = 0

    def get(self) -> bytes:
        now = trio.current_time()
        if now - self._at >= self.max_age_s:
            self._bytes, self._at = self._build(), now
            self.builds += 1
        return self._bytes


class Streams:
    """The open SSE streams: a cap, a count, and the bytes they sent."""

    def __init__(
        self,
        snapshots: SnapshotCache,
        *,
        limit: int = 16,
        interval_s: float = 1.0,
        max_stream_s: float = 600.0,
        retry_ms: int = 2000,
        draining: trio.Event | None = None,
    ) -> None:
        self.snapshots = snapshots
        self.limit = limit
        self.interval_s = interval_s
        self.max_stream_s = max_stream_s
        self.retry_ms = retry_ms
        self.draining = draining if draining is not None else trio.Event()
        self.open = 0
        self.served = 0
        self.sent_bytes = 0

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def statistics(self) -> dict[str, int]:
        return {"open": self.open, "limit": self.limit, "served": self.served}

    async def stream(self) -> AsyncIterator[bytes]:
        """One client's feed (the response body). Its slot is held from its first item."""
        if self.full or self.draining.is_set():  # lost a race with the route's check
            return
        self.open += 1
        self.served += 1
        try:
            first = b"retry: %d\n\n" % self.retry_ms + sse_frame(self.snapshots.get())
            self.sent_bytes += len(first)
            yield first
            ends = trio.current_time() + self.max_stream_s
            while True:
                with trio.move_on_at(min(trio.current_time() + self.interval_s, ends)):
                    await self.draining.wait()
                if self.draining.is_set() or trio.current_time() >= ends:
                    return
                frame = sse_frame(self.snapshots.get())
                self.sent_bytes += len(frame)
                yield frame
        finally:
            self.open -= 1
