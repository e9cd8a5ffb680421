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
    Providers ``devnet-1`` .. ``devnet-4``; ``devnet-4`` is written ``archival = false``
    as an operator would after ``lasso probe --write``. The oracle is node 0, direct.
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
config or public battle is meant to test, so they are left alone. ``broken=True`` writes
``[routing] max_attempts = 1`` and removes every hedge: the deliberately broken gateway.

Leaving ``gateway()`` undoes every fault, stops the process (SIGTERM, bounded, SIGKILL) and
writes the original config text back, so the next scenario starts from the same file.
"""

from __future__ import annotations

import copy
import logging
import re
import subprocess
import tomllib
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import trio

from battle.chaindata import ChainData, create_chain_data
from battle.control import Need
from battle.events import Recorder
from battle.gateway_proc import REPO, GatewayProcess, run_gateway
from battle.harness_chaos import ConfigFile, HarnessChaos, ProviderLink
from battle.logtraffic import make_log_traffic
from battle.results import ProviderInfo, mask_url
from lasso.chaos.faultproxy import open_fault_proxy
from lasso.chaos.tcpcut import open_tcp_relay
from lasso.config import ConfigError, load_settings
from lasso.devnet import Devnet, DevnetError, find_anvil, open_devnet
from lasso.devnet.anvil import pick_free_ports
from lasso.devnet.guardian import Guardian, open_guardian
from lasso.upstream.provider import request_headers

log = logging.getLogger(__name__)

__all__ = ["BattleEnv", "GatewayProcess", "TargetUnavailable", "open_battle_env"]

Target = Literal["devnet", "public", "config"]

DEVNET_NODES = 4
PRUNED_NODE = 3
PRUNED_KEEPS = 16
BLOCK_TIME_S = 1.0
SEED_TIMEOUT_S = 60.0
#: The devnet battle's breaker recovery wait (see the module docstring).
DEVNET_RECOVERY_TIMEOUT_MS = 3000
REACH_TIMEOUT_S = 3.0
PUBLIC_SETTINGS = REPO / "settings.toml"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class TargetUnavailable(Exception):
    """The target cannot be reached (no network); the run should skip, saying why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class BattleEnv:
    target: Target
    chain: str  # the chain's name in the gateway's config (its URL path)
    chain_data: ChainData | None
    oracle_http_url: str
    oracle_ws_url: str | None
    config_path: Path
    workdir: Path
    seed: int
    broken: bool
    links: tuple[ProviderLink, ...]
    devnet: Devnet | None
    _guardian: Guardian
    _tree: dict[str, Any]
    _header: str
    _anvil_version: str | None = None
    _gateways: int = field(default=0)

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
        port = int(self._tree["server"]["port"])
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


# --- opening it ----------------------------------------------------------------------------------


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
            env = await _open_devnet(stack, chain, workdir, seed, broken, guardian)
        elif target in ("config", "public"):
            env = await _open_configured(
                stack, target, chain, config_path, workdir, seed, broken, guardian
            )
        else:
            raise ValueError(f"unknown battle target {target!r}")
        yield env


async def _open_devnet(
    stack: AsyncExitStack, chain: str, workdir: Path, seed: int, broken: bool, guardian: Guardian
) -> BattleEnv:
    devnet = await stack.enter_async_context(
        open_devnet(
            nodes=DEVNET_NODES,
            block_time_s=None,
            port_base=0,
            prune_history={PRUNED_NODE: PRUNED_KEEPS},
        )
    )
    with trio.fail_after(SEED_TIMEOUT_S):
        data = await create_chain_data(devnet)
    miner = await stack.enter_async_context(trio.open_nursery())
    stack.callback(miner.cancel_scope.cancel)
    await miner.start(devnet.mine_every, BLOCK_TIME_S)
    links = []
    for node in devnet.nodes:
        pruned = node.index == PRUNED_NODE
        proxy = await stack.enter_async_context(open_fault_proxy(node.http_url))
        http_relay = await stack.enter_async_context(open_tcp_relay(_port(proxy.url)))
        ws_relay = await stack.enter_async_context(open_tcp_relay(node.port))
        role = f"pruned (keeps {PRUNED_KEEPS})" if pruned else "full"
        links.append(
            ProviderLink(
                id=f"devnet-{node.index + 1}",
                upstream_url=node.http_url,
                upstream_ws_url=node.ws_url,
                proxy=proxy,
                http_relay=http_relay,
                ws_relay=ws_relay,
                node=node.index,
                role=role + (", oracle" if node.index == 0 else ""),
            )
        )
    providers: list[dict[str, Any]] = []
    for link in links:
        entry: dict[str, Any] = {
            "id": link.id,
            "url": link.gateway_url,
            "ws_url": link.gateway_ws_url,
            "priority": len(providers) + 1,
        }
        if link.node == PRUNED_NODE:
            entry["archival"] = False
        providers.append(entry)
    tree: dict[str, Any] = {
        "server": {},
        "circuit_breaker": {"recovery_timeout_ms": DEVNET_RECOVERY_TIMEOUT_MS},
        "chains": {
            chain: {
                "chain_id": 31337,
                "block_time_ms": int(BLOCK_TIME_S * 1000),
                "providers": providers,
            }
        },
    }
    return await _finish(
        stack,
        target="devnet",
        chain=chain,
        tree=tree,
        workdir=workdir,
        seed=seed,
        broken=broken,
        guardian=guardian,
        links=tuple(links),
        devnet=devnet,
        data=data,
        oracle=(devnet.nodes[0].http_url, devnet.nodes[0].ws_url),
        anvil_version=await _anvil_version(),
        source="the local devnet",
    )


async def _open_configured(
    stack: AsyncExitStack,
    target: Target,
    chain: str,
    config_path: Path | None,
    workdir: Path,
    seed: int,
    broken: bool,
    guardian: Guardian,
) -> BattleEnv:
    path = PUBLIC_SETTINGS if target == "public" else config_path
    if path is None:
        raise ValueError("the config target needs config_path")
    try:
        settings = load_settings(str(path))
    except ConfigError as exc:
        raise ValueError(f"{path}: {exc.render()}") from None
    profile = settings.profile("default")
    resolved = None if profile is None else profile.resolve_chain(chain)
    if resolved is None:
        raise ValueError(f"{path} has no chain {chain!r} in its default profile")
    if target == "public":
        await check_reachable([p.url for p in resolved.providers])
    tree = tomllib.loads(path.read_text())
    if target == "public":
        tree = {k: v for k, v in tree.items() if k not in ("chains", "profiles")}
        tree["chains"] = {resolved.name: tomllib.loads(path.read_text())["chains"][resolved.name]}
    links: list[ProviderLink] = []
    for entry, provider in zip(
        tree["chains"][resolved.name]["providers"], resolved.providers, strict=True
    ):
        proxy = await stack.enter_async_context(
            open_fault_proxy(provider.url, headers=request_headers(provider))
        )
        http_relay = await stack.enter_async_context(open_tcp_relay(_port(proxy.url)))
        ws_relay, ws_path = None, ""
        ws = provider.ws_url
        if ws is not None and _relayable_ws(ws):
            parts = urlsplit(ws)
            ws_relay = await stack.enter_async_context(open_tcp_relay(parts.port or 80))
            ws_path = parts.path + (f"?{parts.query}" if parts.query else "")
        first = not links
        link = ProviderLink(
            id=provider.id,
            upstream_url=provider.url,
            upstream_ws_url=ws,
            proxy=proxy,
            http_relay=http_relay,
            ws_relay=ws_relay,
            ws_path=ws_path,
            role=("archival" if provider.archival else "non-archival")
            + (", oracle" if first else ""),
        )
        links.append(link)
        entry["url"] = link.gateway_url
        if ws_relay is not None:
            entry["ws_url"] = link.gateway_ws_url
        entry.pop("headers", None)
        entry.pop("api_key", None)
    first_provider = resolved.providers[0]
    return await _finish(
        stack,
        target=target,
        chain=resolved.name,
        tree=tree,
        workdir=workdir,
        seed=seed,
        broken=broken,
        guardian=guardian,
        links=tuple(links),
        devnet=None,
        data=None,
        oracle=(first_provider.url, first_provider.ws_url),
        anvil_version=None,
        source=f"{path}",
    )


async def _finish(
    stack: AsyncExitStack,
    *,
    target: Target,
    chain: str,
    tree: dict[str, Any],
    workdir: Path,
    seed: int,
    broken: bool,
    guardian: Guardian,
    links: tuple[ProviderLink, ...],
    devnet: Devnet | None,
    data: ChainData | None,
    oracle: tuple[str, str | None],
    anvil_version: str | None,
    source: str,
) -> BattleEnv:
    del stack
    server = tree.setdefault("server", {})
    server["host"] = "127.0.0.1"
    server["port"] = pick_free_ports(1)[0]
    if broken:
        break_failover(tree)
    header = (
        f"Written by the battle harness (battle/env.py) for target {target!r}, chain {chain!r},\n"
        f"from {source}. Provider urls point at the harness's relays and fault proxies."
        + (
            "\nBROKEN on purpose: failover off ([routing] max_attempts = 1, no hedge)."
            if broken
            else ""
        )
    )
    config_path = workdir / "battle.toml"
    ConfigFile(config_path, tree, chain, header).write(tree)
    load_settings(str(config_path))  # the harness's own file must be one the gateway takes
    return BattleEnv(
        target=target,
        chain=chain,
        chain_data=data,
        oracle_http_url=oracle[0],
        oracle_ws_url=oracle[1],
        config_path=config_path,
        workdir=workdir,
        seed=seed,
        broken=broken,
        links=links,
        devnet=devnet,
        _guardian=guardian,
        _tree=tree,
        _header=header,
        _anvil_version=anvil_version,
    )


def break_failover(tree: dict[str, Any]) -> None:
    """Failover off: one attempt per request and no hedge, anywhere in the tree."""
    routing = tree.setdefault("routing", {})
    routing["max_attempts"] = 1
    routing.pop("hedge", None)
    chain_tables: list[dict[str, Any]] = list(tree.get("chains", {}).values())
    for profile in tree.get("profiles", {}).values():
        chain_tables += list(profile.get("chains", {}).values())
    for table in chain_tables:
        table.pop("hedge", None)


# --- helpers -----------------------------------------------------------------------------------


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"no port in {url!r}")
    return port


def _relayable_ws(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "ws" and (parts.hostname or "") in _LOOPBACK and not parts.username


async def check_reachable(urls: Sequence[str], timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Return once any of ``urls`` takes a TCP connection; else :class:`TargetUnavailable`
    naming the first one's host and error. Every attempt is bounded by ``timeout_s``."""
    errors: dict[int, str] = {}
    reached: list[str] = []

    async def attempt(slot: int, url: str, scope: trio.CancelScope) -> None:
        parts = urlsplit(url)
        host = parts.hostname or url
        port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        try:
            with trio.fail_after(timeout_s):
                stream = await trio.open_tcp_stream(host, port)
            await stream.aclose()
        except (OSError, trio.TooSlowError) as exc:
            errors[slot] = f"{host}: {str(exc) or type(exc).__name__}"
            return
        reached.append(url)
        scope.cancel()

    async with trio.open_nursery() as nursery:
        for slot, url in enumerate(urls):
            nursery.start_soon(attempt, slot, url, nursery.cancel_scope)
    if not reached:
        first = errors[min(errors)] if errors else "no providers"
        raise TargetUnavailable(f"no network: {first}")


async def _anvil_version() -> str | None:
    try:
        with trio.fail_after(10):
            done = await trio.run_process([find_anvil(), "--version"], capture_stdout=True)
    except (OSError, subprocess.CalledProcessError, trio.TooSlowError, DevnetError) as exc:
        log.warning("anvil --version failed: %s", exc)
        return None
    text: str = done.stdout.decode(errors="replace").strip()
    return text.splitlines()[0] if text else None


_URL_STRING = re.compile(r'"((?:https?|wss?)://[^"]*)"')
_SECRET_LINE = re.compile(r'^(\s*(?:api_key)\s*=\s*)"[^"]*"', re.MULTILINE)
_HEADERS_LINE = re.compile(r"^(\s*headers\s*=\s*)\{.*\}\s*$", re.MULTILINE)


def mask_config(text: str) -> str:
    """The config text with every URL masked (:func:`battle.results.mask_url`) and
    ``api_key`` and ``headers`` values hidden."""
    text = _URL_STRING.sub(lambda m: '"' + mask_url(m.group(1)) + '"', text)
    text = _SECRET_LINE.sub(r'\1"***"', text)
    return _HEADERS_LINE.sub(r"\1{ *** }", text)
