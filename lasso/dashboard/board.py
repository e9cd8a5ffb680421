"""The dashboard's state: its recorder, its shared snapshot, its streams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from lasso.core.jsonrpc import encode_json
from lasso.dashboard.recorder import Recorder
from lasso.dashboard.snapshot import build_snapshot
from lasso.dashboard.stream import SnapshotCache, Streams

if TYPE_CHECKING:
    from lasso.gateway import Gateway
    from lasso.reload import ReloadState
    from lasso.subscriptions.hub import SubscriptionHub

__all__ = ["Dashboard"]


class Dashboard:
    """One per app: observes the gateway's calls from construction on.

    ``draining`` (the daemon's shutdown event) ends every open stream at once.
    """

    def __init__(
        self,
        gateway: Gateway,
        hub: SubscriptionHub | None = None,
        reloads: ReloadState | None = None,
        *,
        draining: trio.Event | None = None,
        keep: int = 50,
        stream_limit: int = 16,
        interval_s: float = 1.0,
    ) -> None:
        self.gateway, self.hub, self.reloads = gateway, hub, reloads
        self.recorder = Recorder(keep)
        gateway.events.request_observers.append(self.recorder.observe)
        self.snapshots = SnapshotCache(self.encoded, max_age_s=interval_s / 2)
        self.streams = Streams(
            self.snapshots, limit=stream_limit, interval_s=interval_s, draining=draining
        )

    def snapshot(self) -> dict[str, Any]:
        """What the page shows, built now."""
        return build_snapshot(
            self.gateway, self.hub, self.reloads, self.recorder, self.streams.statistics()
        )

    def encoded(self) -> bytes:
        return encode_json(self.snapshot())
