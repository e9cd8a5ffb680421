"""Every provider's WebSocket cut, then back: a newHeads subscription resumes within
about the reconnect backoff, through the real front end with real anvil nodes.

A cut relay accepts and resets at once. Before the dial watched the handshake for a
reset, every reconnect attempt made during the outage hung for the whole
``connect_timeout_ms`` (10 s), so the subscription resumed up to 10 s after the
nodes were back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.config import parse_settings
from lasso.devnet import Devnet, open_devnet
from tests.support.front import open_lasso, relayed_providers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A fixed, short backoff (no growth to speak of within the test) so "within about the
# backoff" is a tight bound; the connect timeout stays at its 10 s default.
SETTINGS = """
[websocket]
reconnect_base_ms = 300
reconnect_cap_ms = 600
[chains.devnet]
chain_id = 31337
block_time_ms = 1000
head_poll_ms = 60000
providers = [
{providers}
]
"""


@pytest.fixture
async def relayed() -> AsyncIterator[tuple[Devnet, list[TcpRelay], str]]:
    async with (
        open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet,
        AsyncExitStack() as stack,
    ):
        await devnet.mine()
        relays = [await stack.enter_async_context(open_tcp_relay(n.port)) for n in devnet.nodes]
        providers = relayed_providers([r.port for r in relays])
        async with open_lasso(parse_settings(SETTINGS.format(providers=providers), env={})) as base:
            yield devnet, relays, base.replace("http://", "ws://")


async def next_head(ws: Any) -> int:
    while True:
        message = json.loads(await ws.get_message())
        if message.get("method") == "eth_subscription":
            return int(message["params"]["result"]["number"], 16)


async def test_new_heads_resume_within_the_backoff_after_every_ws_was_cut(
    relayed: tuple[Devnet, list[TcpRelay], str],
) -> None:
    devnet, relays, base = relayed
    with trio.fail_after(30):
        async with open_websocket_url(f"{base}/ws/rpc/devnet") as client:
            request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            await client.send_message(json.dumps(request))
            assert "result" in json.loads(await client.get_message())
            await devnet.mine()
            assert await next_head(client) == 2

            for relay in relays:
                relay.cut()
            await trio.sleep(1.5)  # an outage: reconnect attempts meet a reset each
            for relay in relays:
                relay.restore()
            back_at = trio.current_time()
            await devnet.mine()
            assert await next_head(client) == 3
            took_s = trio.current_time() - back_at
    print(f"newHeads resumed {took_s:.3f} s after the nodes returned")
    assert took_s < 2.0
