"""The life cycle of one upstream WebSocket, as an enum and a transition table.

Theory of operation. ``WsConnection.run`` starts in IDLE and moves to
CONNECTING. A handshake that completes makes the link CONNECTED; one that
fails (refused, rejected, timed out) goes straight to BACKOFF. A link that
stays up for ``stable_after_s`` becomes STABLE, which resets the reconnect
backoff. Losing the link from CONNECTED or STABLE goes to BACKOFF, and
BACKOFF ends by CONNECTING again. Leaving ``run`` (cancelled, or a bug) is
STOPPED from anywhere; the supervisor may start ``run`` again from there.
Any other move is our bug and raises.
"""

from __future__ import annotations

import enum

__all__ = ["IllegalTransition", "WsState", "check_transition"]


class WsState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    STABLE = "stable"
    BACKOFF = "backoff"
    STOPPED = "stopped"


_S = WsState
_NEXT: dict[WsState, frozenset[WsState]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.STOPPED}),
    _S.CONNECTING: frozenset({_S.CONNECTED, _S.BACKOFF, _S.STOPPED}),
    _S.CONNECTED: frozenset({_S.STABLE, _S.BACKOFF, _S.STOPPED}),
    _S.STABLE: frozenset({_S.BACKOFF, _S.STOPPED}),
    _S.BACKOFF: frozenset({_S.CONNECTING, _S.STOPPED}),
    _S.STOPPED: frozenset({_S.CONNECTING}),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(current: WsState, new: WsState) -> WsState:
    """Return ``new`` if the table allows ``current -> new``; raise otherwise."""
    if new not in _NEXT[current]:
        raise IllegalTransition(f"WebSocket state {current.value} -> {new.value}")
    return new
