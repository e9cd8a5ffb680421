"""The battlefield: the target's providers, the harness's links to them, a gateway per scenario.

``async with open_battle_env(target=..., chain=..., config_path=..., workdir=..., seed=...)``
gives a :class:`BattleEnv`; ``async with env.gateway(recorder) as gw`` runs a fresh
``lasso serve`` subprocess (:mod:`battle.gateway_proc`) for one scenario, with
``gw.chaos`` (:class:`battle.harness_chaos.HarnessChaos`) acting on the providers.

Targets:

``devnet``
    Four lockstep anvil nodes (:func:`lasso.devnet.open_devnet`): nodes 0-2 full, node 3
    pruned (``--prune-history 16``), seeded with :func:`battle.chaindata.create_chain_data`
    and then mined every second. The devnet is opened with ``block_time_s=None`` and its
    timer (``Devnet.mine_every(1.0)``) started only after seeding: the seed mines its own
    blocks and describes them by number, which a timer mining in between would shift.
    Providers ``devnet-1`` .. ``devnet-4``; ``devnet-4`` is deliberately not written
    ``archival = false``: the gateway must learn it is pruned from its refusals, as it must
    for an operator who never ran ``lasso probe --write``. The oracle is node 0, direct.
``config``
    The operator's file (``config_path``), kept whole, except that each provider of the
    battle chain goes through the harness's links: ``url`` becomes the relay in front of
    a fault proxy that forwards to the real URL (https included) with the provider's
    ``headers`` and ``api_key`` (moved out of the written file into the proxy), and
    ``ws_url`` becomes a relay when it is plain ``ws://`` on loopback. A TLS or remote
    WebSocket cannot be relayed by rewriting the host (TLS names, Host headers), so it
    stays direct and :class:`~battle.control.Need` ``WEBSOCKET`` is False unless at least
    one WebSocket is relayed. The oracle is the first provider, direct. No node control.
``public``
    The chain's providers in the repository's ``settings.toml``, like ``config`` but with
    only the battle chain kept (the gateway should not poll unrelated public providers).
    Before anything, one bounded connect per provider; if none answers,
    :class:`TargetUnavailable` ``("no network: <host>: <error>")``.

The written config (``workdir/battle.toml``) always has ``[server] host = "127.0.0.1"`` and a
free ``port``. On the devnet target only, ``[circuit_breaker] recovery_timeout_ms = 3000``: the
default 60 s would keep a killed-then-restarted node out of rotation for longer than a whole
scenario, so recovery would never be measured; an operator's own breaker settings are what a
config or public battle is meant to test, so they are left alone. Also on the devnet only,
``[websocket] route_unary = false``: the fault proxy sits on the HTTP path, so unary calls
routed over a provider's WebSocket would slip past an injected delay, 429 or method fault;
the WebSockets carry the subscriptions (and ``cut`` / ``cut_ws`` reach them). ``broken=True`` writes
``[routing] max_attempts = 1`` and removes every hedge: the deliberately broken gateway.

Leaving ``gateway()`` undoes every fault, stops the process (SIGTERM, bounded, SIGKILL) and
writes the original config text back, so the next scenario starts from the same file.

Modules: ``targets`` (opening each target, writing the config), ``gateway_proc`` (the
``lasso serve`` subprocess), ``harness_chaos`` (the links and :class:`~battle.control.Chaos`),
``logtraffic`` (logs for subscribers on the devnet), ``tomlwrite`` (the config writer).
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import trio

from battle.control import Need
from battle.events import Recorder
from battle.gateway_proc import GatewayProcess, run_gateway
from battle.harness_chaos import ConfigFile, HarnessChaos, ProviderLink
from battle.logtraffic import make_log_traffic
from battle.results import ProviderInfo, mask_url
from battle.targets import (
    PRUNED_NODE,
    Prepared,
    Target,
    TargetUnavailable,
    open_config_target,
    open_devnet_target,
)
from lasso.devnet.anvil import pick_free_ports
from lasso.devnet.guardian import Guardian, open_guardian

__all__ = ["BattleEnv", "GatewayProcess", "TargetUnavailable", "mask_config", "open_battle_env"]


class BattleEnv:
    """An opened target; see the module docstring. Get one from :func:`open_battle_env`."""

    def __init__(
        self, prepared: Prepared, *, workdir: Path, seed: int, broken: bool, guardian: Guardian
    ) -> None:
        self.target = prepared.target
        self.chain = prepared.chain  # the chain's name in the gateway's config (its URL path)
        self.chain_data = prepared.chain_data
        self.oracle_http_url = prepared.oracle_http_url
        self.oracle_ws_url = prepared.oracle_ws_url
        self.config_path = prepared.config_path
        self.links = prepared.links
        self.devnet = prepared.devnet
        self.workdir = workdir
        self.seed = seed
        self.broken = broken
        self._guardian = guardian
        self._tree = prepared.tree
        self._header = prepared.header
        self._anvil_version = prepared.anvil_version
        self._gateways = 0

    def providers(self) -> tuple[ProviderInfo, ...]:
        return tuple(
            ProviderInfo(
                id=link.id,
                url=mask_url(link.upstream_url),
                ws_url=None if link.upstream_ws_url is None else mask_url(link.upstream_ws_url),
                role=link.role,
            )
            for link in self.links
        )

    def config_text(self) -> str:
        return self.config_path.read_text()

    def config_masked(self) -> str:
        return mask_config(self.config_text())

    def has(self, need: Need) -> bool:
        return need in self.needs

    @property
    def needs(self) -> frozenset[Need]:
        needs = {Need.PROXY, Need.RELOAD}
        if self.devnet is not None:
            needs |= {Need.NODES, Need.PRUNED}
        if any(link.ws_relay is not None for link in self.links):
            needs.add(Need.WEBSOCKET)
        return frozenset(needs)

    @property
    def pruned(self) -> str | None:
        return self.links[PRUNED_NODE].id if self.devnet is not None else None

    def anvil_version(self) -> str | None:
        return self._anvil_version

    def link(self, provider: str) -> ProviderLink:
        """The harness's handles on one provider (its proxy's counters, its relays)."""
        for link in self.links:
            if link.id == provider:
                return link
        raise KeyError(provider)

    async def log_traffic(self, duration_s: float) -> int:
        """On the devnet: a transaction to the emitter each block for ``duration_s``, so
        ``logs`` subscriptions see logs; returns how many were sent (0 on other targets)."""
        if self.devnet is None or self.chain_data is None:
            return 0
        return await make_log_traffic(self.devnet, self.chain_data, duration_s)

    @asynccontextmanager
    async def gateway(self, recorder: Recorder) -> AsyncIterator[GatewayProcess]:
        """A fresh gateway process for one scenario; leaving it undoes every fault."""
        self._gateways += 1
        original = self.config_path.read_text()
        # The file's port served the first gateway; each later one gets a fresh free port
        # (given as --port), so no scenario waits on the last one's socket.
        port = int(self._tree["server"]["port"]) if self._gateways == 1 else pick_free_ports(1)[0]
        config = ConfigFile(self.config_path, copy.deepcopy(self._tree), self.chain, self._header)
        try:
            async with run_gateway(
                config_path=self.config_path,
                port=port,
                chain=self.chain,
                providers=[link.id for link in self.links],
                log_path=self.workdir / f"gateway-{self._gateways}.log",
                pid_path=self.workdir / "gateway.pid",
                guardian=self._guardian,
            ) as process:
                chaos = HarnessChaos(
                    links=self.links,
                    recorder=recorder,
                    config=config,
                    pid=process.pid,
                    health_url=f"http://127.0.0.1:{port}/health",
                    devnet=self.devnet,
                    pruned_id=self.pruned,
                    needs=self.needs,
                    alive=lambda: process.poll() is None,
                )
                base = f"127.0.0.1:{port}"
                try:
                    yield GatewayProcess(
                        http_url=f"http://{base}/rpc/{self.chain}",
                        ws_url=f"ws://{base}/ws/rpc/{self.chain}",
                        health_url=f"http://{base}/health",
                        pid=process.pid,
                        chaos=chaos,
                        log_path=self.workdir / f"gateway-{self._gateways}.log",
                        process=process,
                    )
                finally:
                    with trio.CancelScope(shield=True):
                        await chaos.undo_all()
        finally:
            for link in self.links:
                link.clear()
            self.config_path.write_text(original)


@asynccontextmanager
async def open_battle_env(
    *,
    target: Target,
    chain: str,
    config_path: Path | None,
    workdir: Path,
    seed: int,
    broken: bool = False,
) -> AsyncIterator[BattleEnv]:
    """The target up, its providers behind the harness's links, the config written."""
    await trio.Path(workdir).mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        guardian = await stack.enter_async_context(open_guardian())
        if target == "devnet":
            prepared = await open_devnet_target(stack, chain, workdir, broken)
        elif target in ("config", "public"):
            prepared = await open_config_target(stack, target, chain, config_path, workdir, broken)
        else:
            raise ValueError(f"unknown battle target {target!r}")
        yield BattleEnv(prepared, workdir=workdir, seed=seed, broken=broken, guardian=guardian)


_URL_STRING = re.compile(r'"((?:https?|wss?)://[^"]*)"')
_SECRET_LINE = re.compile(r'^(\s*(?:api_key)\s*=\s*)"[^"]*"', re.MULTILINE)
_HEADERS_LINE = re.compile(r"^(\s*headers\s*=\s*)\{.*\}\s*$", re.MULTILINE)


def mask_config(text: str) -> str:
    """The config text with every URL masked (:func:`battle.results.mask_url`) and
    ``api_key`` and ``headers`` values hidden."""
    text = _URL_STRING.sub(lambda m: '"' + mask_url(m.group(1)) + '"', text)
    text = _SECRET_LINE.sub(r'\1"***"', text)
    return _HEADERS_LINE.sub(r"\1{ *** }", text)
