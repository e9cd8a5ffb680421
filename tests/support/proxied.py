"""Devnet nodes behind chaos pieces, and the gateway settings the tests put in front.

Behind a :class:`~lasso.chaos.FaultProxy` each upstream call can be counted per node
and faults put on the wire; behind a :class:`~lasso.chaos.TcpRelay` the first node's
path can be cut or blackholed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from lasso.chaos import FaultProxy, TcpRelay, open_fault_proxy
from lasso.config import Settings, parse_settings
from lasso.devnet import Devnet

PRIORITY_SETTINGS = """
[server]
shutdown_grace_ms = 200

[routing]
default_strategy = "priority"

[chains.devnet]
chain_id = 31337
block_time_ms = 1000
{chain}
providers = [
{providers}
]
"""


@asynccontextmanager
async def open_fault_proxies(devnet: Devnet) -> AsyncIterator[list[FaultProxy]]:
    """A fault proxy in front of each node's HTTP endpoint, in node order."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(open_fault_proxy(n.http_url)) for n in devnet.nodes]


def priority_settings(proxies: list[FaultProxy], chain: str = "") -> Settings:
    """Chain ``devnet`` over ``proxies`` as providers ``proxy0``, ``proxy1``, ... with
    priorities 1, 2, ... and the ``priority`` strategy, so proxy0 is tried first;
    ``chain`` holds extra ``[chains.devnet]`` lines."""
    providers = ",\n".join(
        f'  {{ id = "proxy{i}", url = "{p.url}", priority = {i + 1} }}'
        for i, p in enumerate(proxies)
    )
    return parse_settings(PRIORITY_SETTINGS.format(chain=chain, providers=providers), env={})


def relayed_settings(devnet: Devnet, relay: TcpRelay, extra: str = "") -> Settings:
    """Every node as a provider ``n0``, ``n1``, ... (priority = index), ``n0`` (first
    choice) through ``relay``, with a short WebSocket heartbeat so a silently dead path
    (the blackhole) is noticed in half a second. ``extra`` is TOML put before the chain;
    starting with "http-only" it leaves every provider without a ws_url."""
    http_only = extra.startswith("http-only")
    extra = extra.removeprefix("http-only")
    n0 = f"127.0.0.1:{relay.port}"
    urls = [(f"http://{n0}", f"ws://{n0}")] + [(n.http_url, n.ws_url) for n in devnet.nodes[1:]]
    rows = [
        f'{{ id = "n{i}", url = "{http}"'
        + ("" if http_only else f', ws_url = "{ws}"')
        + f", priority = {i} }}"
        for i, (http, ws) in enumerate(urls)
    ]
    text = (
        "[websocket]\nping_interval_ms = 200\npong_timeout_ms = 300\n"
        + extra
        + "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n"
        + ",\n".join(rows)
        + "\n]\n"
    )
    return parse_settings(text, env={})
