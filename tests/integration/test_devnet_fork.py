"""Devnet.fork and Devnet.heal on real anvil nodes: a real fork, then the common chain again."""

from __future__ import annotations

import pytest
import trio

from lasso.devnet import DEV_ACCOUNTS, DevnetError, open_devnet
from lasso.devnet.network import FORK_SENDER
from tests.integration.test_devnet import assert_identical_chain, blocks_at

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_forked_node_has_its_own_block_then_heals_onto_the_common_chain() -> None:
    with trio.fail_after(60):
        async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
            for _ in range(3):
                await devnet.mine()
            forked_hash = await devnet.fork(2)
            assert devnet.statistics().forked == frozenset({2})
            with pytest.raises(DevnetError, match="already forked"):
                await devnet.fork(2)

            # The others go on, with a transaction the forked node never sees.
            raw = await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=10**15)
            tx_hash = await devnet.send_raw_transaction(raw)
            assert await devnet.mine() == 4
            await devnet.mine()
            four = await blocks_at(devnet, 4)
            assert four[0]["hash"] == four[1]["hash"] != four[2]["hash"] == forked_hash
            assert len({b["parentHash"] for b in four}) == 1  # forked from the common block 3
            assert {b["timestamp"] for b in four} == {four[0]["timestamp"]}  # same timestamp
            own = await devnet.request(2, "eth_getBlockByNumber", ["0x4", True])
            assert [t["from"].lower() for t in own["transactions"]] == [FORK_SENDER.lower()]
            assert await devnet.request(2, "eth_blockNumber") == "0x4"  # it mines no more
            assert await devnet.request(2, "eth_getTransactionByHash", [tx_hash]) is None

            await devnet.heal(2)
            assert devnet.statistics().forked == frozenset()
            assert devnet.statistics().heads == (5, 5, 5)
            await assert_identical_chain(devnet, 5)
            receipt = await devnet.request(2, "eth_getTransactionReceipt", [tx_hash])
            assert receipt["blockNumber"] == "0x4"
            await devnet.mine()  # back in lockstep
            await assert_identical_chain(devnet, 6)
            with pytest.raises(DevnetError, match="not forked"):
                await devnet.heal(2)


async def test_a_fork_with_pending_transactions_heals_with_them() -> None:
    with trio.fail_after(60):
        async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
            await devnet.mine()
            raw = await devnet.sign_transfer(to=DEV_ACCOUNTS[2], value_wei=10**15)
            tx_hash = await devnet.send_raw_transaction(raw)  # pending on both nodes
            await devnet.fork(1)  # node 1 mines it into its own block, with its own tx
            await devnet.mine()
            two = await blocks_at(devnet, 2)
            assert two[0]["hash"] != two[1]["hash"]
            await devnet.heal(1)
            await assert_identical_chain(devnet, 2)
            receipt = await devnet.request(1, "eth_getTransactionReceipt", [tx_hash])
            assert receipt["blockNumber"] == "0x2"
