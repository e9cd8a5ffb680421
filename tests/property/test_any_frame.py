"""Any WebSocket frame gets a JSON-RPC answer (or none, for notifications), and the socket
stays open and usable afterwards."""

from __future__ import annotations

import json
import random

import msgspec
import pytest
import trio
from hypothesis import HealthCheck, given, settings

from lasso.config import parse_settings
from lasso.daemon import open_gateway
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS, FakeFleet
from tests.property.test_any_body import bodies
from tests.support.asgi import open_asgi_websocket

PROBE = json.dumps({"jsonrpc": "2.0", "id": "probe", "method": "eth_chainId", "params": []})


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=bodies)
async def test_any_frame_is_answered_and_the_socket_survives(frame: bytes) -> None:
    fleet = FakeFleet()
    config = parse_settings(SETTINGS, env={})
    async with open_gateway(config, rng=random.Random(1), transports=fleet.transport) as gateway:
        app = LassoASGI(gateway, create_app(gateway))
        async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
            with trio.fail_after(10):
                await ws.send_bytes(frame)
                await ws.send_text(PROBE)
                seen = [msgspec.json.decode(await ws.receive_text())]
                if seen[0] != {"jsonrpc": "2.0", "id": "probe", "result": "0x7a69"}:
                    seen.append(msgspec.json.decode(await ws.receive_text()))
    probe = {"jsonrpc": "2.0", "id": "probe", "result": "0x7a69"}
    assert probe in seen  # the socket still works
    others = [m for m in seen if m != probe]
    for message in others:
        for item in message if isinstance(message, list) else [message]:
            assert item["jsonrpc"] == "2.0"
            assert ("result" in item) != ("error" in item)
