"""eth_sendRawTransaction on virtual time: every branch of lasso.transactions on scripted providers.

Each provider's ``request`` is replaced by a script (answer, JSON-RPC error, reset,
hang, delay), so the real router, dispatcher, breakers and classifier run, and the
clock is trio's MockClock.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from lasso.config import parse_settings
from lasso.core.reply import interpret
from lasso.core.router import ChannelView, Tier
from lasso.core.txhash import keccak256
from lasso.daemon import open_gateway
from lasso.dispatch import providers_first
from lasso.errors import UpstreamNetworkError
from lasso.gateway import Gateway
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import FakeFleet
from tests.support.asgi import asgi_request

# A typed (0x02) transaction as far as framing goes: type byte, then one RLP list.
RAW = "0x02c3010203"
HASH = "0x" + keccak256(bytes.fromhex(RAW[2:])).hex()
NODE_HASH = HASH.upper().replace("0X", "0x")  # a node's own spelling, passed through as is
TX = '{"hash":"' + HASH + '","nonce":"0x0"}'

Action = Callable[[str], Any]


def result(value: str) -> Action:
    return lambda _pid: value


def rpc_error(code: int, message: str) -> Action:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}})

    def fail(pid: str) -> Any:
        interpret(body.encode(), 1, provider_id=pid)  # raises the classified error

    return fail


def reset(pid: str) -> Any:
    raise UpstreamNetworkError("ReadError: connection reset by peer", provider_id=pid)


HANG = "hang"


class Script:
    """One provider's scripted answers per method; every call is logged with its time."""

    def __init__(self, pid: str) -> None:
        self.pid = pid
        self.actions: dict[str, Action | str] = {}
        self.delay_s = 0.0
        self.calls: list[tuple[str, float]] = []
        self.finished: list[str] = []

    async def request(
        self, method: str, params: bytes, transport: str = "http"
    ) -> tuple[bytes, int]:
        self.calls.append((method, trio.current_time()))
        action = self.actions.get(method, result("null"))
        await trio.sleep(self.delay_s)
        if action == HANG:
            await trio.sleep_forever()
        assert callable(action)
        value = action(self.pid)
        self.finished.append(method)
        return value.encode(), 1000

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


SETTINGS = """
[chains.testnet]
chain_id = 31337
head_poll_ms = 0  # these fakes count calls; head tracking has its own tests
block_time_ms = 1000
broadcast_raw_transactions = {broadcast}
providers = [
  {{ id = "p1", url = "http://p1.invalid", priority = 1 }},
  {{ id = "p2", url = "http://p2.invalid", priority = 2 }},
  {{ id = "p3", url = "http://p3.invalid", priority = 3 }},
]
"""


class Rig:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.app = LassoASGI(gateway, create_app(gateway))
        chain = gateway.profiles["default"]["testnet"]
        self.scripts = {pid: Script(pid) for pid in chain.providers}
        for pid, provider in chain.providers.items():
            provider.request = self.scripts[pid].request  # type: ignore[method-assign]

    def on(self, pid: str, method: str, action: Action | str) -> None:
        self.scripts[pid].actions[method] = action

    def sends(self) -> list[int]:
        return [s.methods().count("eth_sendRawTransaction") for s in self.scripts.values()]

    async def send(
        self, params: object = (RAW,), path: str = "/rpc/priority/testnet", query: str = ""
    ) -> Any:
        body = msgspec.json.encode(
            {"jsonrpc": "2.0", "id": 9, "method": "eth_sendRawTransaction", "params": params}
        )
        response = await asgi_request(self.app, "POST", path, body, query=query)
        assert response.status == 200
        return response


@pytest.fixture
async def rig(fleet: FakeFleet) -> AsyncIterator[Rig]:
    settings = parse_settings(SETTINGS.format(broadcast="false"), env={})
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        yield Rig(gw)


@pytest.fixture
async def broadcast(fleet: FakeFleet) -> AsyncIterator[Rig]:
    settings = parse_settings(SETTINGS.format(broadcast="true"), env={})
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        yield Rig(gw)


def answer(response: Any) -> Any:
    return response.json()


# --- one provider at a time: failover after an ambiguous failure ----------------


async def test_a_reset_after_the_request_left_fails_over(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.on("p1", "eth_sendRawTransaction", reset)
    rig.on("p2", "eth_sendRawTransaction", result(f'"{NODE_HASH}"'))
    response = await rig.send()
    # The node's own answer, byte for byte (no rewriting of a success).
    assert response.body == b'{"jsonrpc":"2.0","id":9,"result":"' + NODE_HASH.encode() + b'"}'
    assert rig.sends() == [1, 1, 0]


async def test_a_timeout_fails_over_after_the_first_attempts_share(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.on("p1", "eth_sendRawTransaction", HANG)
    rig.on("p2", "eth_sendRawTransaction", result(f'"{HASH}"'))
    start = trio.current_time()
    assert answer(await rig.send())["result"] == HASH
    (_, at), *_ = rig.scripts["p2"].calls
    assert at - start == pytest.approx(3.0)  # 60% of eth_sendRawTransaction's 5 s


async def test_every_provider_failing_is_the_exhausted_error(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    # Not a reset from all three: a send that loses the connection mid-request to two
    # providers stops there (the next test).
    rig.on("p1", "eth_sendRawTransaction", reset)
    rig.on("p2", "eth_sendRawTransaction", rpc_error(-32603, "internal error"))
    rig.on("p3", "eth_sendRawTransaction", reset)
    error = answer(await rig.send())["error"]
    assert error["code"] == -32000
    assert [a["provider"] for a in error["data"]["attempts"]] == ["p1", "p2", "p3"]


async def test_a_send_that_loses_two_providers_mid_request_stops_there(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    # A signed transaction that crashes the nodes it reaches (lasso.core.poison) goes
    # to no third provider, and the same bytes are refused for a while.
    for pid in rig.scripts:
        rig.on(pid, "eth_sendRawTransaction", reset)
    error = answer(await rig.send())["error"]
    assert error["code"] == -32000
    assert "lost the connection to 2 providers" in error["message"]
    assert [a["provider"] for a in error["data"]["attempts"]] == ["p1", "p2"]
    again = answer(await rig.send())["error"]
    assert again["message"] == error["message"]
    assert rig.sends() == [1, 1, 0]


async def test_a_pinned_provider_gets_one_attempt(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.on("p1", "eth_sendRawTransaction", reset)
    error = answer(await rig.send(path="/rpc/provider/p1/testnet"))["error"]
    assert error["code"] == -32004
    assert rig.sends() == [1, 0, 0]


@pytest.mark.parametrize(
    "params",
    [["0x02c301020"], ["02c3010203"], ["0xzz"], ["0x80"], [RAW, RAW], [], [1], {"raw": RAW}],
    ids=["odd", "no-0x", "not-hex", "rlp-string", "two", "none", "number", "object"],
)
async def test_params_without_a_hash_go_the_nodes_way(
    rig: Rig, autojump_clock: trio.testing.MockClock, params: object
) -> None:
    # No local hash: an ordinary write, dispatched once, and the node's error as it is.
    rig.on("p1", "eth_sendRawTransaction", rpc_error(-32602, "Failed to decode transaction"))
    error = answer(await rig.send(params))["error"]
    assert error == {"code": -32602, "message": "Failed to decode transaction"}
    rig.on("p1", "eth_sendRawTransaction", reset)
    assert answer(await rig.send(params))["error"]["code"] == -32004  # not resent
    assert rig.sends() == [2, 0, 0]


# --- refusals that mean "I have it" ---------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32000, "already known"),
        (-32003, "transaction already imported"),
        (-32000, "known transaction: " + HASH[2:]),
        (-32000, "ALREADY_EXISTS: already known"),
        (-32010, "Transaction already in pool"),
        (-32010, "AlreadyKnown"),
    ],
)
async def test_already_known_answers_the_lowercase_hash(
    rig: Rig, autojump_clock: trio.testing.MockClock, code: int, message: str
) -> None:
    rig.on("p1", "eth_sendRawTransaction", rpc_error(code, message))
    rig.on("p2", "eth_sendRawTransaction", rpc_error(code, message))
    rig.on("p3", "eth_sendRawTransaction", rpc_error(code, message))
    response = await rig.send(["0X" + RAW[2:].upper()])
    assert response.body == b'{"jsonrpc":"2.0","id":9,"result":"' + HASH.encode() + b'"}'


def big_raw(size: int) -> bytes:
    """A typed transaction framing one ``size``-byte RLP string (size < 65536)."""
    item = b"\xb9" + size.to_bytes(2) + b"\x01" * size
    return b"\x02\xf9" + len(item).to_bytes(2) + item


async def test_a_big_transaction_is_hashed_off_the_event_loop(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    raw = big_raw(20_000)
    rig.on("p1", "eth_sendRawTransaction", rpc_error(-32000, "already known"))
    reply = answer(await rig.send(["0x" + raw.hex()]))
    assert reply["result"] == "0x" + keccak256(raw).hex()


async def test_already_known_after_a_cut_answers_the_hash(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.on("p1", "eth_sendRawTransaction", reset)
    rig.on("p2", "eth_sendRawTransaction", rpc_error(-32000, "already known"))  # gossiped
    reply = answer(await rig.send(query="include_meta=body"))
    assert reply["result"] == HASH
    assert reply["lasso_meta"]["selected_provider"] == {"id": "p2", "protocol": "http"}
    assert rig.sends() == [1, 1, 0]


async def test_nonce_too_low_for_a_known_transaction_answers_the_hash(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.on("p1", "eth_sendRawTransaction", rpc_error(-32003, "nonce too low"))
    rig.on("p3", "eth_getTransactionByHash", result(TX))  # only p3 knows it (mined there)
    assert answer(await rig.send())["result"] == HASH
    lookups = [s.methods().count("eth_getTransactionByHash") for s in rig.scripts.values()]
    assert lookups == [1, 1, 1]  # asked at once, every provider


@pytest.mark.parametrize("lookup", [result("null"), reset, rpc_error(-32601, "nope")])
async def test_nonce_too_low_for_an_unknown_transaction_is_the_nodes_error(
    rig: Rig, autojump_clock: trio.testing.MockClock, lookup: Action
) -> None:
    nonce_too_low = b'{"code":-32003,"message":"nonce too low","data":"0x01"}'
    body = b'{"jsonrpc":"2.0","id":1,"error":' + nonce_too_low + b"}"
    rig.on("p1", "eth_sendRawTransaction", lambda pid: interpret(body, 1, provider_id=pid))
    for pid in rig.scripts:
        rig.on(pid, "eth_getTransactionByHash", lookup)
    response = await rig.send()
    assert response.body == b'{"jsonrpc":"2.0","id":9,"error":' + nonce_too_low + b"}"
    assert rig.sends() == [1, 0, 0]


async def test_another_rejection_is_the_nodes_error_at_once(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.on("p1", "eth_sendRawTransaction", rpc_error(-32003, "insufficient funds for gas"))
    error = answer(await rig.send())["error"]
    assert error == {"code": -32003, "message": "insufficient funds for gas"}
    assert rig.sends() == [1, 0, 0]


async def test_node_signed_methods_stay_refused(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    for method in ("eth_sendTransaction", "eth_signTransaction", "eth_sign"):
        body = msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
        error = (await asgi_request(rig.app, "POST", "/rpc/testnet", body)).json()["error"]
        assert error == {"code": -32601, "message": f"Method {method} is not supported by proxy"}
    assert all(s.calls == [] for s in rig.scripts.values())


# --- broadcast ------------------------------------------------------------------


async def test_broadcast_answers_with_the_first_success_and_still_reaches_every_provider(
    broadcast: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    for pid, delay in (("p1", 0.5), ("p2", 0.1), ("p3", 0.3)):
        broadcast.on(pid, "eth_sendRawTransaction", result(f'"{HASH}"'))
        broadcast.scripts[pid].delay_s = delay
    start = trio.current_time()
    reply = answer(await broadcast.send(query="include_meta=body"))
    assert reply["result"] == HASH
    assert reply["lasso_meta"]["selected_provider"] == {"id": "p2", "protocol": "http"}
    assert trio.current_time() - start == pytest.approx(0.1)
    assert broadcast.sends() == [1, 1, 1]  # all started at once
    await trio.sleep(1)  # the others finish in the gateway's service nursery
    assert [s.finished for s in broadcast.scripts.values()] == [["eth_sendRawTransaction"]] * 3


async def test_broadcast_counts_already_known_as_success(
    broadcast: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    broadcast.on("p1", "eth_sendRawTransaction", reset)
    broadcast.on("p2", "eth_sendRawTransaction", rpc_error(-32000, "already known"))
    broadcast.on("p3", "eth_sendRawTransaction", HANG)
    reply = answer(await broadcast.send(query="include_meta=body"))
    assert reply["result"] == HASH
    assert reply["lasso_meta"]["selected_provider"] == {"id": "p2", "protocol": "http"}


async def test_broadcast_all_failing_with_one_error_is_that_error(
    broadcast: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    for pid in broadcast.scripts:
        broadcast.on(pid, "eth_sendRawTransaction", rpc_error(-32003, "insufficient funds"))
    error = answer(await broadcast.send())["error"]
    assert error == {"code": -32003, "message": "insufficient funds"}
    assert broadcast.sends() == [1, 1, 1]


async def test_broadcast_all_failing_otherwise_is_the_exhausted_error_in_the_deadline(
    broadcast: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    broadcast.on("p1", "eth_sendRawTransaction", reset)
    broadcast.on("p2", "eth_sendRawTransaction", HANG)
    broadcast.on("p3", "eth_sendRawTransaction", rpc_error(-32003, "insufficient funds"))
    start = trio.current_time()
    error = answer(await broadcast.send())["error"]
    assert trio.current_time() - start < 5.0
    assert error["code"] == -32000
    assert sorted(a["provider"] for a in error["data"]["attempts"]) == ["p1", "p2", "p3"]


async def test_broadcast_nonce_too_low_everywhere_for_a_known_transaction(
    broadcast: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    for pid in broadcast.scripts:
        broadcast.on(pid, "eth_sendRawTransaction", rpc_error(-32003, "nonce too low"))
    broadcast.on("p2", "eth_getTransactionByHash", result(TX))
    assert answer(await broadcast.send())["result"] == HASH


async def test_broadcast_survives_a_bug_in_one_send(
    broadcast: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    def bug(_pid: str) -> Any:
        raise RuntimeError("our bug")

    broadcast.on("p1", "eth_sendRawTransaction", bug)
    broadcast.on("p2", "eth_sendRawTransaction", result(f'"{HASH}"'))
    broadcast.scripts["p2"].delay_s = 0.2
    broadcast.on("p3", "eth_sendRawTransaction", reset)
    assert answer(await broadcast.send())["result"] == HASH
    assert answer(await broadcast.send())["result"] == HASH  # the gateway is fine


async def test_broadcast_to_a_pinned_provider_is_one_send(
    broadcast: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    broadcast.on("p2", "eth_sendRawTransaction", result(f'"{HASH}"'))
    response = await broadcast.send(path="/rpc/provider/p2/testnet")
    assert answer(response)["result"] == HASH
    assert broadcast.sends() == [0, 1, 0]


async def test_broadcast_without_a_service_nursery_waits_for_every_send(
    broadcast: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    broadcast.gateway.services = None
    for pid, delay in (("p1", 0.5), ("p2", 0.1), ("p3", 0.3)):
        broadcast.on(pid, "eth_sendRawTransaction", result(f'"{HASH}"'))
        broadcast.scripts[pid].delay_s = delay
    start = trio.current_time()
    assert answer(await broadcast.send())["result"] == HASH
    assert trio.current_time() - start == pytest.approx(0.5)


async def test_broadcast_follows_a_reload_of_the_chain_key(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    chain = rig.gateway.profiles["default"]["testnet"]
    for pid in rig.scripts:
        rig.on(pid, "eth_sendRawTransaction", result(f'"{HASH}"'))
    await rig.send()
    assert rig.sends() == [1, 0, 0]
    on = msgspec.structs.replace(chain.config, broadcast_raw_transactions=True)
    chain.reconfigure(on, chain.routing)
    await rig.send()
    await trio.sleep(1)
    assert rig.sends() == [2, 1, 1]


def test_each_providers_first_channel_comes_first() -> None:
    def view(pid: str, transport: str) -> ChannelView:
        return ChannelView(pid, transport, priority=0, order=0, tier=Tier.HEALTHY)

    channels = (view("a", "http"), view("a", "ws"), view("b", "ws"), view("b", "http"))
    ordered = providers_first(channels)
    assert [(v.provider_id, v.transport) for v in ordered] == [
        ("a", "http"),
        ("b", "ws"),
        ("a", "ws"),
        ("b", "http"),
    ]
