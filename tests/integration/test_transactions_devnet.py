"""eth_sendRawTransaction through the real front end, on real anvil nodes behind fault proxies.

Three lockstep devnet nodes, each behind a :class:`FaultProxy` (every upstream call
counted, faults on the wire), a gateway on a real socket with the ``priority``
strategy, so proxy0 is tried first. The devnet's nodes are not peered: a
transaction reaches a node only if Lasso sends it there, so each node's receipts
show exactly where it went and how often it was mined.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
import trio

from lasso.chaos import FaultProxy
from lasso.chaos.faults import Fault
from lasso.core.txhash import keccak256, transaction_hash
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from tests.support.front import devnet_settings, open_lasso
from tests.support.proxied import open_fault_proxies, priority_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GUARD_S = 30.0


@dataclass
class Rig:
    devnet: Devnet
    proxies: list[FaultProxy]
    client: httpx.AsyncClient

    def sends(self) -> list[int]:
        return [proxy.calls["eth_sendRawTransaction"] for proxy in self.proxies]

    async def send(self, raw: str, rid: int = 1) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": rid, "method": "eth_sendRawTransaction", "params": [raw]}
        response = await self.client.post(
            "/rpc/devnet",
            content=msgspec.json.encode(body),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        return response

    async def sign_transfer(self) -> str:
        """A signed transfer of 0.001 ETH from the first dev account to the second."""
        return await self.devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=10**15)

    async def on_each_node(self, method: str, params: list[Any]) -> list[Any]:
        return [await self.devnet.request(i, method, params) for i in range(3)]


@asynccontextmanager
async def open_rig(*, broadcast: bool = False) -> AsyncIterator[Rig]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        await devnet.mine()
        async with open_fault_proxies(devnet) as proxies:
            chain = f"broadcast_raw_transactions = {str(broadcast).lower()}"
            async with (
                open_lasso(priority_settings(proxies, chain)) as base,
                httpx.AsyncClient(base_url=base, trust_env=False, timeout=None) as client,
            ):
                yield Rig(devnet, proxies, client)


def local_hash(raw: str) -> str:
    digest = transaction_hash(bytes.fromhex(raw[2:]))
    assert digest is not None
    return "0x" + digest.hex()


async def pending(rig: Rig) -> list[int]:
    return [int(s["pending"], 16) for s in await rig.on_each_node("txpool_status", [])]


async def times_mined(devnet: Devnet, index: int, tx_hash: str) -> int:
    """How many blocks of node ``index`` include ``tx_hash``."""
    head = int(await devnet.request(index, "eth_blockNumber"), 16)
    count = 0
    for number in range(head + 1):
        block = await devnet.request(index, "eth_getBlockByNumber", [hex(number), False])
        count += block["transactions"].count(tx_hash)
    return count


async def test_a_cut_after_the_request_was_written_fails_over_and_mines_once() -> None:
    with trio.fail_after(GUARD_S):
        async with open_rig() as rig:
            raw = await rig.sign_transfer()
            rig.proxies[0].queued.append(Fault.FORWARD_THEN_RESET)
            answer = (await rig.send(raw)).json()
            assert answer == {"jsonrpc": "2.0", "id": 1, "result": local_hash(raw)}
            # node0 took it (its answer was cut), node1 took the resend, node2 never saw it.
            assert rig.sends() == [1, 1, 0]
            await rig.devnet.mine()
            receipts = await rig.on_each_node("eth_getTransactionReceipt", [local_hash(raw)])
            mined = [await times_mined(rig.devnet, i, local_hash(raw)) for i in range(3)]
            nonces = await rig.on_each_node("eth_getTransactionCount", [DEV_ACCOUNTS[0], "latest"])
    assert [r and r["status"] for r in receipts] == ["0x1", "0x1", None]
    assert receipts[0]["blockNumber"] == receipts[1]["blockNumber"] == "0x2"
    assert mined == [1, 1, 0]
    assert nonces == ["0x1", "0x1", "0x0"]


async def test_a_timeout_after_the_request_was_written_fails_over() -> None:
    with trio.fail_after(GUARD_S):
        async with open_rig() as rig:
            raw = await rig.sign_transfer()
            rig.proxies[0].queued.append(Fault.HANG)
            answer = (await rig.send(raw)).json()
            assert rig.sends() == [1, 1, 0]
    assert answer["result"] == local_hash(raw)


async def test_a_resend_of_the_same_transaction_answers_the_hash() -> None:
    with trio.fail_after(GUARD_S):
        async with open_rig() as rig:
            raw = await rig.sign_transfer()
            first = (await rig.send(raw, rid=1)).json()
            again = (await rig.send(raw, rid=2)).json()  # anvil: "transaction already imported"
            assert rig.sends() == [2, 0, 0]
            await rig.devnet.mine()
            # Mined: the node now says "nonce too low", and it knows the transaction.
            after = (await rig.send(raw, rid=3)).json()
            mined = await times_mined(rig.devnet, 0, local_hash(raw))
    assert first["result"] == again["result"] == after["result"] == local_hash(raw)
    assert [again["id"], after["id"]] == [2, 3]
    assert mined == 1


async def test_nonce_too_low_for_an_unknown_transaction_is_the_nodes_error() -> None:
    with trio.fail_after(GUARD_S):
        async with open_rig() as rig:
            devnet = rig.devnet
            mined = await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=1, nonce=0)
            await devnet.send_raw_transaction(mined)
            await devnet.mine()
            other = await devnet.sign_transfer(to=DEV_ACCOUNTS[2], value_wei=2, nonce=0)
            via_lasso = await rig.send(other, rid=7)
            body = {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "eth_sendRawTransaction",
                "params": [other],
            }
            direct = await rig.client.post(devnet.nodes[0].http_url, json=body)
    assert via_lasso.json()["error"]["message"] == "nonce too low"
    assert via_lasso.content == direct.content


async def test_broadcast_reaches_every_node_and_mines_once_in_lockstep() -> None:
    with trio.fail_after(GUARD_S):
        async with open_rig(broadcast=True) as rig:
            raw = await rig.sign_transfer()
            answer = (await rig.send(raw)).json()
            # The answer may beat the slower sends: poll every node's pool.
            while await pending(rig) != [1, 1, 1]:  # noqa: ASYNC110
                await trio.sleep(0.01)  # polling the nodes, bounded by fail_after
            sends = rig.sends()
            await rig.devnet.mine()
            receipts = await rig.on_each_node("eth_getTransactionReceipt", [local_hash(raw)])
            mined = [await times_mined(rig.devnet, i, local_hash(raw)) for i in range(3)]
    assert answer["result"] == local_hash(raw)
    assert sends == [1, 1, 1]
    assert len({r["blockHash"] for r in receipts}) == 1  # every node mined the same block
    assert mined == [1, 1, 1]


async def test_broadcast_of_a_known_transaction_answers_the_hash() -> None:
    with trio.fail_after(GUARD_S):
        async with open_rig(broadcast=True) as rig:
            raw = await rig.sign_transfer()
            await rig.devnet.send_raw_transaction(raw)  # every node already has it
            answer = (await rig.send(raw)).json()
    assert answer["result"] == local_hash(raw)


async def test_local_hashes_equal_anvils() -> None:
    """Keccak against anvil's web3_sha3 (across block sizes), tx hashes against anvil's."""
    base = {"from": DEV_ACCOUNTS[0], "to": DEV_ACCOUNTS[1], "value": "0x1", "gas": "0x5208"}
    legacy = base | {"gasPrice": hex(10**10), "nonce": "0x0"}
    access_list = base | {"gasPrice": hex(10**10), "nonce": "0x1", "type": "0x1", "accessList": []}
    dynamic = base | {"maxFeePerGas": hex(10**10), "maxPriorityFeePerGas": "0x1", "nonce": "0x2"}
    with trio.fail_after(GUARD_S):
        async with open_devnet(nodes=1, block_time_s=None, port_base=0) as devnet:
            for size in (0, 3, 135, 136, 137, 272, 1000):
                data = bytes(range(256)) * 4
                expected = await devnet.request(0, "web3_sha3", ["0x" + data[:size].hex()])
                assert "0x" + keccak256(data[:size]).hex() == expected, size
            for request, kind in ((legacy, "0xf8"), (access_list, "0x01"), (dynamic, "0x02")):
                raw = await devnet.request(0, "eth_signTransaction", [request])
                assert raw.startswith(kind)
                assert local_hash(raw) == await devnet.send_raw_transaction(raw)


async def test_a_hung_node_with_http_and_websocket_channels_costs_one_attempt() -> None:
    """Frozen node0 (SIGSTOP) behind both its channels: the send still reaches node1."""
    with trio.fail_after(GUARD_S):
        async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
            await devnet.mine()
            raw = await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=10**15)
            async with (
                open_lasso(devnet_settings(devnet)) as base,
                httpx.AsyncClient(base_url=base, trust_env=False, timeout=None) as client,
            ):
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction"}
                devnet.freeze(0)
                try:
                    response = await client.post(
                        "/rpc/priority/devnet", json=body | {"params": [raw]}
                    )
                finally:
                    devnet.thaw(0)
                pool = await devnet.request(1, "txpool_status")
    assert response.json()["result"] == local_hash(raw)
    assert pool["pending"] == "0x1"
