"""Lasso's real front end on a loopback socket, for tests: ``lasso.daemon.serve`` on port 0.

One place builds it, so every test that talks to Lasso over real sockets does so the
same way (hypercorn's protocol code under Lasso's own accept loop, the gateway, the
subscription hub) and stops it the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

import trio

from battle.replay import serve_lasso
from lasso.config import Settings, load_settings, parse_settings
from lasso.daemon import serve
from lasso.devnet import Devnet
from lasso.reload import ReloadState

#: Serve ``settings`` until the block exits; yield the base URL (``http://127.0.0.1:N``).
#: The battle harness's replay serves Lasso the same way (battle may not import tests/).
open_lasso = serve_lasso


def devnet_settings(devnet: Devnet) -> Settings:
    """One chain ``devnet`` with every node as a provider (HTTP and WS), priority = index."""
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", priority = {n.index} }}'
        for n in devnet.nodes
    )
    return parse_settings(
        f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n{providers}\n]\n",
        env={},
    )


def relayed_providers(ports: Sequence[int]) -> str:
    """The inline provider tables for nodes reached through TCP relays on ``ports``: HTTP and
    WS both through relay ``i``, id ``n<i>``, priority ``i``."""
    return ",\n".join(
        f'{{ id = "n{i}", url = "http://127.0.0.1:{port}", '
        f'ws_url = "ws://127.0.0.1:{port}", priority = {i} }}'
        for i, port in enumerate(ports)
    )


async def sighup_applied(state: ReloadState, send: trio.MemorySendChannel[object]) -> None:
    """Send a "SIGHUP" into the daemon's reload channel and wait until the new generation
    is applied (polled: the reload runs in the daemon's own task)."""
    generation = state.generation
    await send.send("SIGHUP")
    with trio.fail_after(10):
        while True:
            if state.generation != generation:
                break
            await trio.sleep(0.01)
    assert state.last is not None and state.last.outcome == "applied"


class Reloadable(NamedTuple):
    """A served gateway whose config file can be rewritten and "SIGHUP"ed."""

    bind: str  # http://127.0.0.1:N
    state: ReloadState
    send: trio.MemorySendChannel[object]  # the daemon's reload channel: see sighup_applied

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])


@asynccontextmanager
async def serve_reloadable(
    path: Path, settings: Settings | None = None, *, buffer: int = 4
) -> AsyncIterator[Reloadable]:
    """``lasso serve`` in this process on a free port for the config file at ``path``
    (``settings``: already loaded from it), with a reload channel standing in for SIGHUP;
    stopped (drained) when the block exits."""
    settings = settings or load_settings(path, env={})
    state = ReloadState(settings, source=str(path))
    send, receive = trio.open_memory_channel[object](buffer)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(
                serve,
                settings,
                host="127.0.0.1",
                port=0,
                shutdown=shutdown,
                config_path=str(path),
                reloads=receive,
                reload_state=state,
            )
        )
        try:
            yield Reloadable(str(binds[0]), state, send)
        finally:
            shutdown.set()
