"""``lasso devnet``: run the lockstep devnet in the foreground until a signal stops it."""

from __future__ import annotations

import signal

import trio

from lasso.devnet.lifecycle import open_devnet
from lasso.devnet.network import DEV_ACCOUNTS, Devnet, DevnetNode

#: Every signal whose default action would end this process and orphan its
#: nodes (they run in their own sessions, so a terminal's SIGHUP or SIGINT
#: reaches only us). SIGKILL cannot be caught.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


async def run_devnet_cli(
    nodes: int,
    block_time_s: float,
    port_base: int,
    *,
    prune_history: dict[int, int] | None = None,
    task_status: trio.TaskStatus[Devnet] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start the devnet, print its node URLs, mine on the timer, stop cleanly on a signal.

    The stop signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT) are taken over before
    any node starts, so none can kill this process while anvil children are
    alive. Must run in the main thread (signal handling).
    """
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with open_devnet(
            nodes=nodes, block_time_s=block_time_s, port_base=port_base, prune_history=prune_history
        ) as devnet:
            print(_banner(devnet, block_time_s), flush=True)
            task_status.started(devnet)
            async for signum in signals:
                print(f"{signal.Signals(signum).name}: stopping the devnet", flush=True)
                break
    print("devnet stopped", flush=True)


def node_line(node: DevnetNode) -> str:
    """One node for a banner: index, URLs, and how much state it keeps when pruned."""
    line = f"node {node.index}  {node.http_url}  {node.ws_url}"
    if node.pruned is not None:
        line += f"  (pruned: keeps the state of its last {node.pruned} blocks)"
    return line


def _banner(devnet: Devnet, block_time_s: float) -> str:
    lines = [f"lasso devnet: {len(devnet.nodes)} anvil nodes, a block every {block_time_s:g}s"]
    lines += [f"  {node_line(n)}" for n in devnet.nodes]
    lines.append(f"  funded, unlocked dev account: {DEV_ACCOUNTS[0]}")
    lines.append("Ctrl-C, SIGTERM or SIGHUP stops every node.")
    return "\n".join(lines)
