"""The health of one devnet node: an enum and its transition table.

Theory of operation
-------------------
A node is ``UP`` while it answers every lockstep call within the devnet's
per-node deadline; only ``UP`` nodes mine, take new transactions and sign.

* A node that misses a deadline (a hang, a stall, a refused connection) is
  ``HUNG``: the others keep mining without it, and the devnet probes it.
* A node whose process exited is ``DEAD``: the devnet restarts it on the
  same port, with backoff. A restarted node is a fresh ``--no-mining`` anvil
  at genesis.
* A node that answers again (a probe after a hang, or a restart), and a
  paused node that is resumed, is ``CATCHING_UP``: it replays the blocks it missed, with the same
  transactions and timestamps, so its hashes match the others', and is
  ``UP`` again once it reaches the tip.

Pausing (a deliberately lagging node) is not a health state: a paused node
is ``UP`` and just not mined. This module is pure: it never awaits.
"""

from __future__ import annotations

import enum


class NodeHealth(enum.Enum):
    UP = "up"
    HUNG = "hung"
    DEAD = "dead"
    CATCHING_UP = "catching-up"


_TRANSITIONS: dict[NodeHealth, frozenset[NodeHealth]] = {
    NodeHealth.UP: frozenset({NodeHealth.HUNG, NodeHealth.DEAD, NodeHealth.CATCHING_UP}),
    NodeHealth.HUNG: frozenset({NodeHealth.CATCHING_UP, NodeHealth.DEAD}),
    NodeHealth.DEAD: frozenset({NodeHealth.CATCHING_UP}),
    NodeHealth.CATCHING_UP: frozenset({NodeHealth.UP, NodeHealth.HUNG, NodeHealth.DEAD}),
}

#: States in which the devnet works on a node (probing it, replaying blocks).
NEEDS_CARE = frozenset({NodeHealth.HUNG, NodeHealth.CATCHING_UP})


def transition(current: NodeHealth, new: NodeHealth) -> NodeHealth:
    """``new`` if the table allows it; an illegal transition is a devnet bug."""
    if new not in _TRANSITIONS[current]:
        raise RuntimeError(f"illegal node health transition {current.value} -> {new.value}")
    return new
