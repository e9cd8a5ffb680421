"""A devnet that survives its nodes: a hung node is skipped, a killed one restarted,
and either catches up with the others' exact hashes when it returns.

Faults are real: SIGSTOP (a node that holds its socket and answers nothing) and
SIGKILL (a crash) sent to the anvil process group.
"""

from __future__ import annotations

import pytest
import trio

from lasso.devnet import DEV_ACCOUNTS, Devnet, DevnetError, NodeHealth, open_devnet
from tests.integration.test_devnet import (
    GENESIS,
    ONE_ETHER,
    assert_identical_chain,
    is_alive,
    process_group_members,
    transfer,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 1.0


async def heads(devnet: Devnet) -> list[int]:
    return [int(await devnet.request(i, "eth_blockNumber"), 16) for i in range(len(devnet.nodes))]


async def test_a_hung_node_is_skipped_and_caught_up_when_it_answers_again() -> None:
    async with open_devnet(nodes=3, block_time_s=None, node_deadline_s=DEADLINE_S) as devnet:
        await transfer(devnet, DEV_ACCOUNTS[1], ONE_ETHER)
        await devnet.mine()
        devnet.freeze(2)

        with trio.fail_after(DEADLINE_S + 5):
            assert await devnet.mine() == 2  # node 2 misses its deadline: not fatal
        assert devnet.health(2) is NodeHealth.HUNG
        # The others go on in lockstep, transactions included, without node 2.
        during = await transfer(devnet, DEV_ACCOUNTS[2], 2 * ONE_ETHER)
        with trio.fail_after(5):
            for _ in range(3):
                await devnet.mine()
        stats = devnet.statistics()
        assert stats.heads[:2] == (5, 5)
        assert stats.health == ("up", "up", "hung")

        devnet.thaw(2)
        with trio.fail_after(30):
            await devnet.wait_for_health(2, NodeHealth.UP)
        assert devnet.statistics().heads == (5, 5, 5)
        assert await heads(devnet) == [5, 5, 5]
        await assert_identical_chain(devnet, 5)
        receipts = [
            await devnet.request(i, "eth_getTransactionReceipt", [during]) for i in range(3)
        ]
        assert len({(r["blockNumber"], r["blockHash"]) for r in receipts}) == 1
        # Back in lockstep: it mines and takes transactions again.
        await transfer(devnet, DEV_ACCOUNTS[3], ONE_ETHER)
        await devnet.mine()
        await assert_identical_chain(devnet, 6)


async def test_a_killed_node_is_restarted_on_its_port_and_replayed_from_genesis() -> None:
    async with open_devnet(nodes=3, block_time_s=None, node_deadline_s=DEADLINE_S) as devnet:
        await transfer(devnet, DEV_ACCOUNTS[1], ONE_ETHER)
        await devnet.mine()
        await devnet.mine()
        old_pid = devnet.statistics().pids[1]
        port = devnet.nodes[1].port

        devnet.kill(1)
        with trio.fail_after(10):
            await devnet.wait_for_health(1, NodeHealth.DEAD, NodeHealth.CATCHING_UP)
            # Mining goes on without it; a pending transaction waits for it.
            await transfer(devnet, DEV_ACCOUNTS[2], ONE_ETHER)
            await devnet.mine()
            await transfer(devnet, DEV_ACCOUNTS[3], ONE_ETHER)
        with trio.fail_after(30):
            await devnet.wait_for_health(1, NodeHealth.UP)

        stats = devnet.statistics()
        assert stats.restarts == (0, 1, 0)
        assert stats.pids[1] != old_pid and not is_alive(old_pid)
        assert process_group_members({old_pid}) == []
        assert devnet.nodes[1].port == port
        assert stats.heads == (3, 3, 3)
        await devnet.mine()  # the pending transfer lands in the same block everywhere
        await assert_identical_chain(devnet, 4)
        blocks = [await devnet.request(i, "eth_getBlockByNumber", ["0x4", False]) for i in range(3)]
        assert [len(b["transactions"]) for b in blocks] == [1, 1, 1]


async def test_the_timer_keeps_mining_past_a_hung_node() -> None:
    async with open_devnet(nodes=3, block_time_s=0.05, node_deadline_s=DEADLINE_S) as devnet:
        with trio.fail_after(10):
            await devnet.wait_for_block(2)
            devnet.freeze(0)
            await devnet.wait_for_health(0, NodeHealth.HUNG)
            hung_at = devnet.statistics().blocks_mined
            await devnet.wait_for_block(hung_at + 10)
        devnet.thaw(0)
        with trio.fail_after(30):
            await devnet.wait_for_health(0, NodeHealth.UP)
        for index in range(3):  # hold the chain still for the comparison
            devnet.pause(index)
        await assert_identical_chain(devnet, min(devnet.statistics().heads))


async def test_a_block_a_node_mined_late_is_kept_when_its_hash_matches() -> None:
    """A mine sent just before a hang may run after it: the catch-up builds on it."""
    async with open_devnet(nodes=2, block_time_s=None) as devnet:
        devnet.pause(1)
        await devnet.mine()
        await devnet.mine()
        await devnet.request(1, "evm_mine", [GENESIS + 1])  # the late mine of block 1
        with trio.fail_after(30):
            await devnet.resume(1)
        assert devnet.statistics().heads == (2, 2)
        assert devnet.statistics().restarts == (0, 0)
        await assert_identical_chain(devnet, 2)


async def test_a_node_whose_chain_diverged_is_restarted_and_replayed() -> None:
    async with open_devnet(nodes=2, block_time_s=None) as devnet:
        devnet.pause(1)
        await devnet.mine()
        await devnet.mine()
        await devnet.request(1, "evm_mine", [GENESIS + 99])  # not the devnet's block 1
        with trio.fail_after(30):
            await devnet.resume(1)  # it is restarted instead
            await devnet.wait_for_health(1, NodeHealth.UP)
        assert devnet.statistics().restarts == (0, 1)
        assert devnet.statistics().heads == (2, 2)
        await assert_identical_chain(devnet, 2)


async def test_a_transaction_no_node_takes_in_time_is_an_error_that_says_so() -> None:
    async with open_devnet(nodes=1, block_time_s=None, node_deadline_s=0.5) as devnet:
        raw = await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=1)
        devnet.freeze(0)
        with trio.fail_after(5), pytest.raises(DevnetError, match="within the node deadline"):
            await devnet.send_raw_transaction(raw)
        assert devnet.health(0) is NodeHealth.HUNG
        devnet.thaw(0)
        with trio.fail_after(30):
            await devnet.wait_for_health(0, NodeHealth.UP)
