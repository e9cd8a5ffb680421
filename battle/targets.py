"""Opening a battle target: the providers behind the harness's links, and the config written.

What each target is, and why the written config differs from the operator's where it does,
is in :mod:`battle.env`'s docstring. Here: :func:`open_devnet_target` and
:func:`open_config_target` (``config`` and ``public``) enter every link into the caller's
exit stack and return a :class:`Prepared`; :func:`check_reachable` is the public target's
bounded network check.
"""

from __future__ import annotations

import logging
import subprocess
import tomllib
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import trio

from battle.chaindata import ChainData, create_chain_data
from battle.gateway_proc import REPO
from battle.harness_chaos import ConfigFile, ProviderLink
from lasso.chaos.faultproxy import open_fault_proxy
from lasso.chaos.tcpcut import open_tcp_relay
from lasso.config import ConfigError, load_settings
from lasso.devnet import Devnet, DevnetError, find_anvil, open_devnet
from lasso.devnet.anvil import pick_free_ports
from lasso.upstream.provider import request_headers

log = logging.getLogger(__name__)

__all__ = [
    "Prepared",
    "Target",
    "TargetUnavailable",
    "break_failover",
    "check_reachable",
    "open_config_target",
    "open_devnet_target",
]

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


@dataclass(frozen=True)
class Prepared:
    """An opened target: what :class:`battle.env.BattleEnv` is made of."""

    target: Target
    chain: str
    chain_data: ChainData | None
    oracle_http_url: str
    oracle_ws_url: str | None
    config_path: Path
    links: tuple[ProviderLink, ...]
    devnet: Devnet | None
    tree: dict[str, Any]
    header: str
    anvil_version: str | None


async def open_devnet_target(
    stack: AsyncExitStack, chain: str, workdir: Path, broken: bool
) -> Prepared:
    """The devnet, seeded and mining, each node behind a relay + proxy (HTTP) and a relay (WS)."""
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
        proxy.reset_when_upstream_down = True  # a killed node looks dead, not like a 502
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
        # The pruned node is NOT written `archival = false`: the gateway must learn it from
        # the node's own refusals (the pruned-history scenario's point).
        providers.append(entry)
    tree: dict[str, Any] = {
        "server": {},
        "circuit_breaker": {"recovery_timeout_ms": DEVNET_RECOVERY_TIMEOUT_MS},
        "websocket": {"route_unary": False},
        "chains": {
            chain: {
                "chain_id": 31337,
                "block_time_ms": int(BLOCK_TIME_S * 1000),
                "providers": providers,
            }
        },
    }
    return _finish(
        target="devnet",
        chain=chain,
        tree=tree,
        workdir=workdir,
        broken=broken,
        links=tuple(links),
        devnet=devnet,
        data=data,
        oracle=(devnet.nodes[0].http_url, devnet.nodes[0].ws_url),
        anvil_version=await _anvil_version(),
        source="the local devnet",
    )


async def open_config_target(
    stack: AsyncExitStack,
    target: Target,
    chain: str,
    config_path: Path | None,
    workdir: Path,
    broken: bool,
) -> Prepared:
    """An operator's config (or the repository's, for ``public``) with the battle chain's
    providers behind the harness's links."""
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
        proxy.reset_when_upstream_down = True
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
    return _finish(
        target=target,
        chain=resolved.name,
        tree=tree,
        workdir=workdir,
        broken=broken,
        links=tuple(links),
        devnet=None,
        data=None,
        oracle=(first_provider.url, first_provider.ws_url),
        anvil_version=None,
        source=f"{path}",
    )


def _finish(
    *,
    target: Target,
    chain: str,
    tree: dict[str, Any],
    workdir: Path,
    broken: bool,
    links: tuple[ProviderLink, ...],
    devnet: Devnet | None,
    data: ChainData | None,
    oracle: tuple[str, str | None],
    anvil_version: str | None,
    source: str,
) -> Prepared:
    """Write the config (``workdir/battle.toml``) the gateways will run."""
    server = tree.pop("server", {})
    server["host"] = "127.0.0.1"
    server["port"] = pick_free_ports(1)[0]
    routing = tree.pop("routing", {})
    tree = {"server": server, "routing": routing, **tree}  # the file reads top-down
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
    return Prepared(
        target=target,
        chain=chain,
        chain_data=data,
        oracle_http_url=oracle[0],
        oracle_ws_url=oracle[1],
        config_path=config_path,
        links=links,
        devnet=devnet,
        tree=tree,
        header=header,
        anvil_version=anvil_version,
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
