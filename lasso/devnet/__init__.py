"""The lockstep devnet: many real providers of one chain.

N anvil nodes started with the same genesis and mined in lockstep with
identical timestamps and transactions, so they serve identical blocks and
hashes, like N providers of one real chain. One node can be paused (a lagging
provider) and resumed (it catches up with the same hashes), and one can run
pruned (``--prune-history``, a non-archive provider). A node that hangs is
skipped while the others mine on; one that dies is restarted; either way it
catches up with the same hashes when it answers again.

Modules: ``ledger`` (pure lockstep bookkeeping), ``health`` (a node's
health states), ``board`` (every node's health), ``recovery`` (probing and
catch-up), ``keeper`` (one node's process and restarts), ``guardian`` (the
nodes stop when their owner is killed), ``anvil`` (finding, starting
and reaping processes), ``control`` (JSON-RPC control calls), ``network``
(:class:`Devnet`), ``lifecycle`` (:func:`open_devnet`), ``cli`` (``lasso devnet``).
"""

from lasso.devnet.anvil import find_anvil
from lasso.devnet.cli import run_devnet_cli
from lasso.devnet.errors import DevnetError, DevnetRpcError
from lasso.devnet.health import NodeHealth
from lasso.devnet.lifecycle import open_devnet
from lasso.devnet.network import DEV_ACCOUNTS, Devnet, DevnetNode, DevnetStatistics

__all__ = [
    "DEV_ACCOUNTS",
    "Devnet",
    "DevnetError",
    "DevnetNode",
    "DevnetRpcError",
    "DevnetStatistics",
    "NodeHealth",
    "find_anvil",
    "open_devnet",
    "run_devnet_cli",
]
