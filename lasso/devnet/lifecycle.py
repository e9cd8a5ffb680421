"""Starting and stopping a devnet: :func:`open_devnet`.

The nodes start in parallel, each run by a keeper (:mod:`lasso.devnet.keeper`)
owned by the devnet's own nursery, with an optional miner on a timer beside
them. Leaving the context (normally, by an exception, or by cancellation)
cancels that nursery, which stops every node: SIGTERM to its process group, a
bounded wait, then SIGKILL. If this process dies without leaving the context
(SIGKILL), the guardian (:mod:`lasso.devnet.guardian`) stops the nodes.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio

from lasso.devnet.anvil import (
    HOST,
    AnvilLaunch,
    RunningAnvil,
    check_port_free,
    find_anvil,
    pick_free_ports,
)
from lasso.devnet.control import ControlClient, open_http_client
from lasso.devnet.errors import DevnetError
from lasso.devnet.guardian import open_guardian
from lasso.devnet.keeper import keep_node
from lasso.devnet.ledger import Ledger
from lasso.devnet.network import Devnet, DevnetNode, gather

#: Each lockstep call to a node (a mine, a transaction, a replayed block) must
#: answer within this; a node that does not is hung and skipped.
NODE_DEADLINE_S = 2.0


@asynccontextmanager
async def open_devnet(
    *,
    nodes: int = 3,
    block_time_s: float | None = 1.0,
    port_base: int = 0,
    chain_id: int = 31337,
    genesis_timestamp: int = 1_700_000_000,
    prune_history: dict[int, int] | None = None,
    anvil_path: str | None = None,
    node_deadline_s: float = NODE_DEADLINE_S,
    rng: random.Random | None = None,
) -> AsyncIterator[Devnet]:
    """Start ``nodes`` anvil nodes of one chain; stop them all on the way out.

    ``port_base=0`` picks free ports; otherwise node ``i`` listens on
    ``port_base + i``. ``prune_history`` maps a node index to the number of
    past states it keeps (``--prune-history=N``, N >= 1; anvil 1.7.1 hangs on
    ``evm_mine`` with N = 0). With ``block_time_s=None`` only :meth:`Devnet.mine`
    makes blocks. Block ``k`` has timestamp ``genesis_timestamp + k * s``, with
    ``s`` the block time rounded to whole seconds (at least 1).

    A node that misses ``node_deadline_s`` on a lockstep call is hung and
    skipped while the others mine on; one whose process dies is restarted on
    its port. Either way it is caught up with identical hashes when it
    answers again (see :mod:`lasso.devnet.health`). ``rng`` jitters the
    restart backoff.
    """
    pruned = dict(prune_history or {})
    _validate(nodes, block_time_s, port_base, pruned)
    if node_deadline_s <= 0:
        raise ValueError(f"node_deadline_s must be positive, not {node_deadline_s}")
    anvil = _resolve_anvil(anvil_path)
    if port_base:
        ports = [port_base + i for i in range(nodes)]
        for port in ports:
            check_port_free(port)
    else:
        ports = pick_free_ports(nodes)
    launches = [
        AnvilLaunch(i, port, bool(port_base), chain_id, genesis_timestamp, pruned.get(i))
        for i, port in enumerate(ports)
    ]
    interval_s = max(1, round(block_time_s or 1))
    ledger = Ledger(nodes, genesis_timestamp=genesis_timestamp, interval_s=interval_s)
    sole: BaseException | None = None
    async with open_http_client() as http, open_guardian() as guardian:
        control = ControlClient(http)
        try:
            devnet = Devnet(control, ledger, node_deadline_s=node_deadline_s)
            async with trio.open_nursery() as nursery:
                start = partial(
                    keep_node,
                    control=control,
                    guardian=guardian,
                    owner=devnet,
                    rng=rng or random.Random(),
                )
                running = await _start_all(nursery, anvil, launches, start)
                devnet.started(_describe(running, pruned))
                if block_time_s is not None:
                    await nursery.start(devnet.mine_every, block_time_s)
                yield devnet
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            sole = _sole_exception(group)
            if sole is group:
                raise
    if sole is not None:
        # Re-raised outside the handler so the caller's own exception comes
        # back as itself, not wrapped in the nursery's group.
        raise sole


def _validate(
    nodes: int, block_time_s: float | None, port_base: int, pruned: dict[int, int]
) -> None:
    if nodes < 1:
        raise ValueError(f"nodes must be at least 1, not {nodes}")
    if block_time_s is not None and block_time_s <= 0:
        raise ValueError(f"block_time_s must be positive or None, not {block_time_s}")
    if port_base and not 0 < port_base <= 65536 - nodes:
        raise ValueError(f"port_base {port_base} leaves no room for {nodes} ports")
    for index, keep in pruned.items():
        if not 0 <= index < nodes:
            raise ValueError(f"prune_history names node {index}; nodes are 0..{nodes - 1}")
        if keep < 1:
            raise ValueError(f"prune_history[{index}] must be at least 1, not {keep}")


def _resolve_anvil(anvil_path: str | None) -> str:
    if anvil_path is None:
        return find_anvil()
    path = Path(anvil_path)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise DevnetError(f"anvil_path {anvil_path!r} is not an executable file")
    return anvil_path


async def _start_all(
    nursery: trio.Nursery,
    anvil: str,
    launches: list[AnvilLaunch],
    keep: Callable[..., Awaitable[None]],
) -> list[RunningAnvil]:
    """Start every node in parallel, each kept by a task in ``nursery``."""

    def starter(launch: AnvilLaunch) -> Callable[[], Awaitable[RunningAnvil]]:
        async def start() -> RunningAnvil:
            started: RunningAnvil = await nursery.start(keep, anvil, launch)
            return started

        return start

    outcomes = await gather([starter(launch) for launch in launches])
    errors = [_sole_exception(e) for e in outcomes if isinstance(e, Exception)]
    if errors:
        raise DevnetError("; ".join(_explain(e) for e in errors))
    return [r for r in outcomes if not isinstance(r, Exception)]


def _explain(error: BaseException) -> str:
    return str(error) if isinstance(error, DevnetError) else f"{type(error).__name__}: {error}"


def _describe(running: list[RunningAnvil], pruned: dict[int, int]) -> list[DevnetNode]:
    return [
        DevnetNode(
            index=i,
            port=r.port,
            http_url=f"http://{HOST}:{r.port}",
            ws_url=f"ws://{HOST}:{r.port}",
            pruned=pruned.get(i),
        )
        for i, r in enumerate(running)
    ]


def _sole_exception(error: BaseException) -> BaseException:
    """The one exception inside (possibly nested) groups, or ``error`` when there are several."""
    if not isinstance(error, BaseExceptionGroup) or len(error.exceptions) != 1:
        return error
    return _sole_exception(error.exceptions[0])
