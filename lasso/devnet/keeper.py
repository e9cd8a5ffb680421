"""Keeping one devnet node alive: its process, its restarts, its catch-up.

A keeper runs one node for the devnet's lifetime, as a loop of *lives*: start
anvil, report it, let :meth:`Devnet.tend` probe and catch it up while the
process runs. When the process exits on its own (a crash, a SIGKILL) the node
is dead: the keeper waits a jittered, capped backoff and starts it again on
the same port, so clients keep their URL, and the devnet replays the chain
into it from genesis. Only the first start can fail the devnet: a devnet
that cannot start says so, a running one never gives up on a node.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from functools import partial
from typing import Protocol

import trio

from lasso.core.backoff import Backoff
from lasso.devnet.anvil import AnvilExit, AnvilLaunch, RunningAnvil, run_anvil
from lasso.devnet.control import ControlClient
from lasso.devnet.errors import DevnetError
from lasso.devnet.guardian import Guardian

log = logging.getLogger("lasso.devnet")

RESTART_BACKOFF = Backoff(base_s=0.1, cap_s=5.0)
#: A life at least this long resets the backoff.
STABLE_LIFE_S = 10.0


class NodeOwner(Protocol):
    """What a keeper reports to (the :class:`Devnet`)."""

    def node_started(self, index: int, pid: int, *, restarted: bool) -> None: ...

    def node_exited(self, index: int, why: str) -> None: ...

    async def tend(self, index: int) -> None: ...


async def keep_node(
    anvil: str,
    launch: AnvilLaunch,
    control: ControlClient,
    guardian: Guardian,
    owner: NodeOwner,
    rng: random.Random,
    *,
    task_status: trio.TaskStatus[RunningAnvil] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run node ``launch.index`` until cancelled, restarting it whenever it dies.

    ``task_status`` gets the first start; a first start that fails raises
    DevnetError. Later failures to start are retried with backoff.
    """
    life = partial(_life, anvil, control=control, guardian=guardian, owner=owner)
    running, ended = await life(launch, task_status, restarted=False)
    # Restarts keep the node's port, whichever the first start settled on.
    launch = dataclasses.replace(launch, port=running.port, fixed=True)
    failures = 0
    while True:
        owner.node_exited(launch.index, ended)
        await trio.sleep(RESTART_BACKOFF.delay(failures, rng))
        began = trio.current_time()
        try:
            _, ended = await life(launch, trio.TASK_STATUS_IGNORED, restarted=True)
        except DevnetError as exc:
            ended = f"restart failed: {exc}"
        stable = trio.current_time() - began >= STABLE_LIFE_S
        failures = 0 if stable else failures + 1


async def _life(
    anvil: str,
    launch: AnvilLaunch,
    task_status: trio.TaskStatus[RunningAnvil],
    *,
    control: ControlClient,
    guardian: Guardian,
    owner: NodeOwner,
    restarted: bool,
) -> tuple[RunningAnvil, str]:
    """One process: start it, tend it while it runs; return why it ended."""
    exits: list[AnvilExit] = []

    async def run(*, task_status: trio.TaskStatus[RunningAnvil]) -> None:
        exits.append(await run_anvil(anvil, launch, control, guardian, task_status=task_status))
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        running: RunningAnvil = await nursery.start(run)
        owner.node_started(launch.index, running.pid, restarted=restarted)
        task_status.started(running)
        nursery.start_soon(owner.tend, launch.index)
    ended = exits[0]
    return running, f"pid {ended.pid} exited with code {ended.returncode}: {ended.stderr}"
