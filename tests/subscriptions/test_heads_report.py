"""A shared newHeads stream reports each head for its provider before clients get it."""

from __future__ import annotations

import json

import trio
import trio.testing

from lasso.subscriptions.fanout import Subscriber
from tests.subscriptions.test_hub import Stack, next_head, stack, subscribe  # noqa: F401
from tests.support.asgi import open_asgi_websocket


class Probe:
    """A client that notes what the chain state says as each notification is sent."""

    def __init__(self, rig: Stack) -> None:
        self.chain = rig.app.gateway.profiles["default"]["testnet"]
        self.seen: list[tuple[int, int | None]] = []

    def notify(self, message: bytes) -> None:
        number = int(json.loads(message)["params"]["result"]["number"], 16)
        self.seen.append((number, self.chain.state.height("p1")))


async def test_a_delivered_head_is_in_the_chain_state_before_fan_out(
    stack: Stack,  # noqa: F811
    autojump_clock: trio.testing.MockClock,
) -> None:
    # head_poll_ms = 0 in this stack: the stream is the only source of heads.
    probe = Probe(stack)
    async with open_asgi_websocket(stack.app, "/ws/rpc/testnet") as ws:
        sub_id = await subscribe(ws, ["newHeads"])
        (stream,) = stack.hub._streams.values()
        watcher = Subscriber("probe", probe, "newHeads", None)
        watcher.release()
        stream.add(watcher)
        assert probe.chain.state.height("p1") is None
        for _ in range(3):
            stack.mine()
            await next_head(ws, sub_id)
        assert probe.seen == [(11, 11), (12, 12), (13, 13)]
        assert probe.chain.state.height("p1") == 13
