"""The lockstep devnet against real anvil nodes on loopback.

Every test mines by hand (``block_time_s=None``) except the one about the
timer, so nothing here depends on wall-clock timing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

import lasso.devnet.anvil as anvil_module
import lasso.devnet.lifecycle as lifecycle_module
from lasso.devnet import (
    DEV_ACCOUNTS,
    Devnet,
    DevnetError,
    DevnetRpcError,
    find_anvil,
    open_devnet,
    run_devnet_cli,
)

pytestmark = pytest.mark.integration

GENESIS = 1_700_000_000
ONE_ETHER = 10**18
START_BALANCE = 10_000 * ONE_ETHER


async def blocks_at(devnet: Devnet, number: int) -> list[dict[str, Any]]:
    return [
        await devnet.request(i, "eth_getBlockByNumber", [hex(number), False])
        for i in range(len(devnet.nodes))
    ]


async def assert_identical_chain(devnet: Devnet, height: int) -> None:
    """Every node has blocks 0..height with the same hashes and lockstep timestamps."""
    for number in range(height + 1):
        blocks = await blocks_at(devnet, number)
        assert all(block is not None for block in blocks), f"block {number} missing"
        assert len({block["hash"] for block in blocks}) == 1, f"block {number} differs"
        assert {int(block["timestamp"], 16) for block in blocks} == {GENESIS + number}


async def transfer(devnet: Devnet, to: str, value_wei: int) -> str:
    raw = await devnet.sign_transfer(to=to, value_wei=value_wei)
    return await devnet.send_raw_transaction(raw)


REPO = Path(__file__).resolve().parents[2]


def is_alive(pid: int) -> bool:
    """Running: exists and is not a zombie (an orphan nobody reaps still has a pid)."""
    try:
        os.kill(pid, 0)
        status = Path(f"/proc/{pid}/status").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return "\nState:\tZ" not in status


def process_group_members(pgids: set[int]) -> list[int]:
    """Live processes in any of these groups (each node runs in its own group)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp in pgids and state != "Z":
            members.append(int(stat.parent.name))
    return members


# --- lockstep --------------------------------------------------------------


@pytest.mark.slow
async def test_every_node_mines_identical_blocks() -> None:
    async with open_devnet(nodes=3, block_time_s=None) as devnet:
        assert [await devnet.mine() for _ in range(4)] == [1, 2, 3, 4]

        await assert_identical_chain(devnet, 4)
        first, second = (await blocks_at(devnet, 1))[0], (await blocks_at(devnet, 2))[0]
        assert second["parentHash"] == first["hash"] != second["hash"]
        stats = devnet.statistics()
        assert stats.heads == (4, 4, 4)
        assert stats.blocks_mined == 4
        assert stats.paused == frozenset()
        for i in range(3):
            assert await devnet.request(i, "eth_blockNumber") == "0x4"
        with pytest.raises(IndexError):
            devnet.pause(3)


@pytest.mark.slow
async def test_a_transfer_lands_in_the_same_block_on_every_node() -> None:
    async with open_devnet(nodes=3, block_time_s=None) as devnet:
        with pytest.raises(DevnetRpcError) as garbage:
            await devnet.send_raw_transaction("0x00")
        assert garbage.value.method == "eth_sendRawTransaction"
        assert devnet.statistics().pending_transactions == 0

        tx_hash = await transfer(devnet, DEV_ACCOUNTS[1], ONE_ETHER)
        assert devnet.statistics().pending_transactions == 1
        assert await devnet.mine() == 1

        receipts = [
            await devnet.request(i, "eth_getTransactionReceipt", [tx_hash]) for i in range(3)
        ]
        assert {r["transactionHash"] for r in receipts} == {tx_hash}
        assert {(r["blockNumber"], r["blockHash"], r["status"]) for r in receipts} == {
            ("0x1", receipts[0]["blockHash"], "0x1")
        }
        assert [block["transactions"] for block in await blocks_at(devnet, 1)] == [[tx_hash]] * 3
        balances = [
            await devnet.request(i, "eth_getBalance", [DEV_ACCOUNTS[1], "latest"]) for i in range(3)
        ]
        assert balances == [hex(START_BALANCE + ONE_ETHER)] * 3
        await assert_identical_chain(devnet, 1)


@pytest.mark.slow
async def test_a_paused_node_lags_then_catches_up_with_identical_hashes() -> None:
    async with open_devnet(nodes=3, block_time_s=None) as devnet:
        # Sent while node 2 is still in sync, so it already holds this one.
        before = await transfer(devnet, DEV_ACCOUNTS[1], ONE_ETHER)
        devnet.pause(2)
        await devnet.mine()
        # Sent while node 2 lags: held back and replayed into block 2 on resume.
        during = await transfer(devnet, DEV_ACCOUNTS[2], 2 * ONE_ETHER)
        await devnet.mine()
        await devnet.mine()

        assert [await devnet.request(i, "eth_blockNumber") for i in range(3)] == [
            "0x3",
            "0x3",
            "0x0",
        ]
        assert devnet.statistics().heads == (3, 3, 0)
        assert devnet.statistics().paused == frozenset({2})
        assert await devnet.request(2, "eth_getTransactionByHash", [during]) is None
        # A lagging anvil asked for state past its head: the gateway sees this.
        with pytest.raises(DevnetRpcError) as ahead:
            await devnet.request(2, "eth_getBalance", [DEV_ACCOUNTS[0], "0x3"])
        assert (ahead.value.code, ahead.value.message) == (
            -32602,
            "BlockOutOfRangeError: block height is 0 but requested was 3",
        )

        await devnet.resume(2)

        assert devnet.statistics().heads == (3, 3, 3)
        assert devnet.statistics().paused == frozenset()
        await assert_identical_chain(devnet, 3)
        for tx_hash, number in ((before, "0x1"), (during, "0x2")):
            receipts = [
                await devnet.request(i, "eth_getTransactionReceipt", [tx_hash]) for i in range(3)
            ]
            assert {(r["blockNumber"], r["blockHash"]) for r in receipts} == {
                (number, receipts[0]["blockHash"])
            }
        await devnet.mine()
        await assert_identical_chain(devnet, 4)


@pytest.mark.slow
async def test_with_every_node_behind_a_send_is_refused_until_one_resumes() -> None:
    async with open_devnet(nodes=2, block_time_s=None) as devnet:
        raw = await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=1)
        devnet.pause(0)
        devnet.pause(1)
        await devnet.mine()
        await devnet.mine()
        assert devnet.statistics().heads == (0, 0)

        with pytest.raises(DevnetError, match="resume one"):
            await devnet.send_raw_transaction(raw)
        with pytest.raises(DevnetError, match="resume one"):
            await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=1)

        await devnet.resume(0)
        await devnet.send_raw_transaction(raw)
        await devnet.mine()
        await devnet.resume(1)
        assert devnet.statistics().heads == (3, 3)
        await assert_identical_chain(devnet, 3)
        assert [len(block["transactions"]) for block in await blocks_at(devnet, 3)] == [1, 1]


# --- a pruned node ------------------------------------------------------------


@pytest.mark.slow
async def test_a_pruned_node_refuses_old_state_with_block_out_of_range() -> None:
    async with open_devnet(nodes=2, block_time_s=None, prune_history={1: 2}) as devnet:
        assert [node.pruned for node in devnet.nodes] == [None, 2]
        for _ in range(5):
            await devnet.mine()

        archive = await devnet.request(0, "eth_getBalance", [DEV_ACCOUNTS[0], "0x1"])
        assert archive == hex(START_BALANCE)
        with pytest.raises(DevnetRpcError) as pruned:
            await devnet.request(1, "eth_getBalance", [DEV_ACCOUNTS[0], "0x1"])
        # The exact answer the gateway's error classifier has to recognise.
        assert (pruned.value.code, pruned.value.message) == (
            -32602,
            "BlockOutOfRangeError: block height is 5 but requested was 1",
        )
        # --prune-history=2 keeps the head's state and two before it.
        assert await devnet.request(1, "eth_getBalance", [DEV_ACCOUNTS[0], "0x3"]) == archive
        with pytest.raises(DevnetRpcError, match="requested was 2"):
            await devnet.request(1, "eth_getBalance", [DEV_ACCOUNTS[0], "0x2"])
        # Pruning drops state, not blocks: old headers are still served, identical.
        await assert_identical_chain(devnet, 5)


async def test_prune_history_zero_is_refused_before_starting_anything() -> None:
    # anvil 1.7.1 with --prune-history=0 spins forever inside evm_mine.
    with pytest.raises(ValueError, match="at least 1"):
        async with open_devnet(nodes=1, block_time_s=None, prune_history={0: 0}):
            pass


# --- processes and ports --------------------------------------------------------


class _Boom(Exception):
    pass


async def use_a_devnet(leave_by: str, pids: list[int], scope: trio.CancelScope) -> None:
    async with open_devnet(nodes=2, block_time_s=None) as devnet:
        pids.extend(devnet.statistics().pids)
        assert len(pids) == 2
        assert all(is_alive(pid) for pid in pids)
        if leave_by == "raise":
            raise _Boom
        if leave_by == "cancel":
            scope.cancel()
            await trio.sleep_forever()


@pytest.mark.slow
@pytest.mark.parametrize("leave_by", ["return", "raise", "cancel"])
async def test_leaving_the_devnet_reaps_every_anvil_process(leave_by: str) -> None:
    pids: list[int] = []
    with trio.CancelScope() as scope:
        if leave_by == "raise":
            with pytest.raises(_Boom):  # comes back as itself, not wrapped in a group
                await use_a_devnet(leave_by, pids, scope)
        else:
            await use_a_devnet(leave_by, pids, scope)

    assert scope.cancelled_caught == (leave_by == "cancel")
    assert [pid for pid in pids if is_alive(pid)] == []
    assert process_group_members(set(pids)) == []


@pytest.mark.slow
async def test_port_base_zero_picks_distinct_free_ports_serving_http_and_ws() -> None:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        ports = [node.port for node in devnet.nodes]
        assert len(set(ports)) == 3
        assert all(port > 0 for port in ports)
        async with httpx.AsyncClient(trust_env=False) as client:
            for node in devnet.nodes:
                assert node.http_url == f"http://127.0.0.1:{node.port}"
                assert node.ws_url == f"ws://127.0.0.1:{node.port}"
                request = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                response = await client.post(node.http_url, json=request)
                assert response.json()["result"] == hex(31337)
        async with open_websocket_url(devnet.nodes[0].ws_url) as ws:
            await ws.send_message(json.dumps(request))
            assert json.loads(await ws.get_message())["result"] == hex(31337)


@pytest.mark.slow
async def test_a_fixed_port_base_is_used_as_given() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with open_devnet(nodes=1, block_time_s=None, port_base=port, chain_id=1337) as devnet:
        assert devnet.nodes[0].port == port
        assert await devnet.request(0, "eth_chainId") == hex(1337)


@pytest.mark.slow
async def test_a_picked_port_taken_before_anvil_binds_it_is_retried_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as squatter:
        # Accepts connections (kernel backlog) but never answers: the worst case.
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        monkeypatch.setattr(lifecycle_module, "pick_free_ports", lambda count: [taken] * count)
        async with open_devnet(nodes=1, block_time_s=None) as devnet:
            assert devnet.nodes[0].port != taken
            assert await devnet.request(0, "eth_chainId") == hex(31337)


async def test_a_busy_fixed_port_fails_fast_and_names_the_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(DevnetError, match=f"port {port} .* not free"):
            async with open_devnet(nodes=1, block_time_s=None, port_base=port):
                pass


# --- the timer, the CLI, finding anvil -------------------------------------------


@pytest.mark.slow
async def test_the_timer_mines_in_lockstep_on_its_own() -> None:
    async with open_devnet(nodes=2, block_time_s=0.05) as devnet:
        with trio.fail_after(5):
            await devnet.wait_for_block(3)
        await assert_identical_chain(devnet, 3)


@pytest.mark.slow
async def test_the_cli_prints_the_nodes_and_stops_cleanly_on_sigterm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            devnet: Devnet = await nursery.start(run_devnet_cli, 2, 60.0, 0)
            pids = devnet.statistics().pids
            os.kill(os.getpid(), signal.SIGTERM)

    out = capsys.readouterr().out
    assert all(node.http_url in out and node.ws_url in out for node in devnet.nodes)
    assert "SIGTERM: stopping the devnet" in out
    assert out.rstrip().endswith("devnet stopped")
    assert [pid for pid in pids if is_alive(pid)] == []


def test_find_anvil_prefers_the_native_binary_of_the_pinned_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LASSO_ANVIL", raising=False)
    monkeypatch.chdir(tmp_path)  # not the repo: found through the package's location
    found = Path(find_anvil())
    assert found.name == "anvil"
    assert found.parent.name == "bin"
    assert found.parent.parent.parent.name == "@foundry-rs"
    assert os.access(found, os.X_OK)


def test_find_anvil_honours_lasso_anvil(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = find_anvil()
    monkeypatch.setenv("LASSO_ANVIL", real)
    assert find_anvil() == real
    monkeypatch.setenv("LASSO_ANVIL", str(tmp_path / "missing"))
    with pytest.raises(DevnetError, match=r"\$LASSO_ANVIL"):
        find_anvil()


def test_find_anvil_without_an_install_says_to_run_make_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LASSO_ANVIL", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(anvil_module, "__file__", str(tmp_path / "lasso" / "devnet" / "anvil.py"))
    with pytest.raises(DevnetError, match="make install"):
        find_anvil()
