"""Node-admin methods are answered -32601 by the gateway and never reach a provider.

Over HTTP and WebSocket, single calls and batch items, routed and pinned to one
provider; ``[server] allow_methods`` lets an operator forward them anyway.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import pytest
import trio

from lasso.config import parse_settings
from lasso.daemon import open_gateway
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS, FakeFleet
from tests.support.asgi import asgi_request, open_asgi_websocket

DENIED = [
    "anvil_setBalance",
    "anvil_reset",
    "hardhat_setBalance",
    "evm_mine",
    "evm_setNextBlockTimestamp",
    "debug_setHead",
    "admin_addPeer",
    "miner_setEtherbase",
    "personal_unlockAccount",
]
PATHS = ["/rpc/testnet", "/rpc/provider/p1/testnet", "/rpc/priority/testnet"]


def call(method: str, rid: object = 1) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": []}


def not_found(method: str, rid: object = 1) -> dict[str, object]:
    message = f"the method {method} does not exist/is not available"
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": message}}


def forwarded(fleet: FakeFleet) -> list[str]:
    return [m for node in fleet.nodes.values() for m in node.calls]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", DENIED)
async def test_http_single_calls_are_denied(
    app: LassoASGI, fleet: FakeFleet, path: str, method: str
) -> None:
    response = await asgi_request(app, "POST", path, json.dumps(call(method)).encode())
    assert response.status == 200
    assert response.json() == not_found(method)
    assert forwarded(fleet) == []


@pytest.mark.parametrize("path", PATHS)
async def test_http_batch_items_are_denied_one_by_one(
    app: LassoASGI, fleet: FakeFleet, path: str
) -> None:
    body = [call("anvil_setBalance", 1), call("eth_blockNumber", 2), call("evm_mine", 3)]
    response = await asgi_request(app, "POST", path, json.dumps(body).encode())
    assert response.json() == [
        not_found("anvil_setBalance", 1),
        {"jsonrpc": "2.0", "id": 2, "result": "0x64"},
        not_found("evm_mine", 3),
    ]
    assert forwarded(fleet) == ["eth_blockNumber"]


@pytest.mark.parametrize("path", PATHS)
async def test_websocket_calls_and_batches_are_denied(
    app: LassoASGI, fleet: FakeFleet, path: str
) -> None:
    async with open_asgi_websocket(app, "/ws" + path) as ws:
        with trio.fail_after(5):
            await ws.send_text(json.dumps(call("anvil_reset", "r")))
            assert await ws.receive_json() == not_found("anvil_reset", "r")
            await ws.send_text(json.dumps([call("hardhat_mine", 1), call("eth_blockNumber", 2)]))
            assert await ws.receive_json() == [
                not_found("hardhat_mine", 1),
                {"jsonrpc": "2.0", "id": 2, "result": "0x64"},
            ]
    assert forwarded(fleet) == ["eth_blockNumber"]


@pytest.fixture
async def permissive_app(fleet: FakeFleet) -> AsyncIterator[LassoASGI]:
    text = SETTINGS.replace(
        "max_batch = 5", 'max_batch = 5\nallow_methods = ["evm_mine", "anvil_*"]'
    )
    settings = parse_settings(text, env={})
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        yield LassoASGI(gw, create_app(gw))


async def test_the_allowlist_forwards_exactly_what_it_names(
    permissive_app: LassoASGI, fleet: FakeFleet
) -> None:
    body = [call("evm_mine", 1), call("anvil_setBalance", 2), call("evm_revert", 3)]
    response = await asgi_request(permissive_app, "POST", "/rpc/testnet", json.dumps(body).encode())
    answers = response.json()
    assert answers[2] == not_found("evm_revert", 3)
    assert sorted(forwarded(fleet)) == ["anvil_setBalance", "evm_mine"]
