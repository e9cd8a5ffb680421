"""The live dashboard at ``/dashboard``: one HTML page fed by Server-Sent Events.

For each (profile, chain): the providers with their breaker states (HTTP and
WebSocket), height, lag, fork state and p50/p99 latency per method; the recent
routing decisions and failovers; the subscription counts; and, for the process, the
operator events and the reload history.

* :mod:`.recorder`: a request observer keeping recent calls and failovers per chain;
* :mod:`.snapshot`: one snapshot as JSON, from the components' statistics();
* :mod:`.stream`: the SSE feed (one snapshot per second, bounded, ends on drain);
* :mod:`.board`: the three together; :mod:`.routes`: the quart-trio routes;
* ``page.html``: the page, inline CSS and JS, no external asset.
"""

from lasso.dashboard.board import Dashboard
from lasso.dashboard.routes import mount

__all__ = ["Dashboard", "mount"]
