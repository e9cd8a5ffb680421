"""Every wire fault in front of the first-choice provider, through a real gateway.

Three lockstep devnet nodes, each behind a FaultProxy (so every upstream call
is counted); a gateway served over real HTTP with providers
[proxy0 (priority 1), proxy1 (2), proxy2 (3)] and the ``priority`` strategy,
so the faulty proxy0 is always tried first while its breaker lets it.

For each fault the client must see no error at all, every answer equal to
node 1's own answer, each inside its method's deadline. A signed transaction
that fails is resent to the next provider (it is idempotent), and a deterministic
error comes back after exactly one upstream call. A fresh gateway per fault keeps
breaker and rate-limit state from leaking between rows; the devnet and proxies
are shared.

Run with ``-s`` to see the fault-matrix summary.
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
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from tests.support.front import open_lasso
from tests.support.proxied import open_fault_proxies, priority_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANG_GUARD_S = 25.0
READS_PER_FAULT = 10
BLOCKS = 5
DEADLINE_S = {"eth_blockNumber": 1.0, "eth_getBalance": 2.0, "eth_getBlockByNumber": 2.0}
MATRIX_FAULTS = [
    None,
    Fault.HTML_500,
    Fault.RESET,
    Fault.HANG,
    Fault.TRUNCATED_JSON,
    Fault.WRONG_ID,
    Fault.RATE_LIMITED_429,
    Fault.METHOD_NOT_FOUND,
]
# A reverting constructor: PUSH1 0 PUSH1 0 REVERT.
REVERTING_INIT_CODE = "0x60006000fd"

# The proxies count client traffic exactly; head tracking is tested apart.
CHAIN = "head_poll_ms = 0"


@dataclass
class Rig:
    devnet: Devnet
    proxies: list[FaultProxy]

    def calls(self, method: str) -> list[int]:
        return [proxy.calls[method] for proxy in self.proxies]

    def reset_counts(self) -> None:
        for proxy in self.proxies:
            proxy.calls.clear()


@asynccontextmanager
async def open_rig() -> AsyncIterator[Rig]:
    async with open_devnet(nodes=3, block_time_s=None) as devnet:
        for _ in range(BLOCKS):
            await devnet.mine()
        async with open_fault_proxies(devnet) as proxies:
            yield Rig(devnet, proxies)


@asynccontextmanager
async def open_gateway_client(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh gateway on a real socket, and an HTTP client pointed at it."""
    async with (
        open_lasso(priority_settings(rig.proxies, CHAIN)) as base,
        httpx.AsyncClient(base_url=base, trust_env=False, timeout=None) as client,
    ):
        yield client


async def rpc(client: httpx.AsyncClient, method: str, params: list[Any], rid: int) -> Any:
    body = msgspec.json.encode({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    response = await client.post(
        "/rpc/devnet", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    answer = msgspec.json.decode(response.content)
    assert answer["id"] == rid, answer
    return answer


def read_requests(count: int) -> list[tuple[str, list[Any]]]:
    requests: list[tuple[str, list[Any]]] = []
    for i in range(count):
        if i % 3 == 0:
            requests.append(("eth_blockNumber", []))
        elif i % 3 == 1:
            requests.append(("eth_getBalance", [DEV_ACCOUNTS[i % len(DEV_ACCOUNTS)], "latest"]))
        else:
            requests.append(("eth_getBlockByNumber", [hex(i % (BLOCKS + 1)), False]))
    return requests


@dataclass
class Row:
    fault: str
    requests: int = 0
    client_errors: int = 0
    wrong_answers: int = 0
    late: int = 0
    max_latency_ms: float = 0.0
    max_share_of_deadline: float = 0.0
    proxy0_calls: int = 0
    failovers: int = 0

    def ok(self) -> bool:
        return self.requests > 0 and not (self.client_errors or self.wrong_answers or self.late)


async def run_reads(rig: Rig, fault: Fault | None) -> Row:
    row = Row(fault.value if fault else "none")
    rig.reset_counts()
    rig.proxies[0].fault = fault
    try:
        async with open_gateway_client(rig) as client:
            for rid, (method, params) in enumerate(read_requests(READS_PER_FAULT), start=1):
                expected = await rig.devnet.request(1, method, params)
                started = trio.current_time()
                answer = await rpc(client, method, params, rid)
                elapsed = trio.current_time() - started
                row.requests += 1
                row.max_latency_ms = max(row.max_latency_ms, elapsed * 1000)
                share = elapsed / DEADLINE_S[method]
                row.max_share_of_deadline = max(row.max_share_of_deadline, share)
                if "error" in answer:
                    row.client_errors += 1
                elif answer["result"] != expected:
                    row.wrong_answers += 1
                if elapsed > DEADLINE_S[method]:
                    row.late += 1
    finally:
        rig.proxies[0].fault = None
    row.proxy0_calls = rig.proxies[0].calls.total()
    row.failovers = rig.proxies[1].calls.total() + rig.proxies[2].calls.total()
    return row


def table(rows: list[Row]) -> str:
    head = (
        f"{'fault':<18}{'requests':>9}{'client errors':>15}{'wrong':>7}{'late':>6}"
        f"{'max ms':>9}{'of deadline':>13}{'proxy0 hits':>13}{'node1+2 calls':>15}"
    )
    lines = ["fault matrix (replay-safe reads, proxy0 faulty, priority strategy)", head]
    lines += [
        f"{r.fault:<18}{r.requests:>9}{r.client_errors:>15}{r.wrong_answers:>7}{r.late:>6}"
        f"{r.max_latency_ms:>9.1f}{r.max_share_of_deadline:>13.0%}{r.proxy0_calls:>13}{r.failovers:>15}"
        for r in rows
    ]
    return "\n".join(lines)


async def test_fault_matrix_reads_never_reach_the_client() -> None:
    with trio.fail_after(HANG_GUARD_S):
        async with open_rig() as rig:
            rows = [await run_reads(rig, fault) for fault in MATRIX_FAULTS]
    summary = table(rows)
    print("\n" + summary)
    assert all(row.ok() for row in rows), summary
    baseline, *faulty = rows
    assert (baseline.proxy0_calls, baseline.failovers) == (READS_PER_FAULT, 0), summary
    # Every fault was met at least once and every failure was served elsewhere.
    assert all(r.proxy0_calls >= 1 and r.failovers >= r.proxy0_calls for r in faulty), summary


async def txpool_pending(devnet: Devnet) -> list[int]:
    statuses = [await devnet.request(i, "txpool_status") for i in range(len(devnet.nodes))]
    return [int(status["pending"], 16) for status in statuses]


@pytest.mark.parametrize(
    ("fault", "pool"),
    [
        pytest.param(Fault.HTML_500, [0, 1, 0], id="html_500-never-forwarded"),
        pytest.param(Fault.TRUNCATED_JSON, [1, 1, 0], id="truncated_json-after-forwarding"),
    ],
)
async def test_a_failed_signed_transaction_is_resent_to_the_next_provider(
    fault: Fault, pool: list[int]
) -> None:
    # A signed transaction is idempotent (lasso.transactions): after a failure that
    # may or may not have reached node0, it goes to node1, and the client gets the hash.
    with trio.fail_after(HANG_GUARD_S):
        async with open_rig() as rig:
            raw = await rig.devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=10**15)
            rig.proxies[0].fault = fault
            async with open_gateway_client(rig) as client:
                answer = await rpc(client, "eth_sendRawTransaction", [raw], 1)
            assert answer["result"].startswith("0x") and len(answer["result"]) == 66, answer
            assert rig.calls("eth_sendRawTransaction") == [1, 1, 0]
            assert await txpool_pending(rig.devnet) == pool


async def test_a_write_goes_through_once_when_healthy() -> None:
    with trio.fail_after(HANG_GUARD_S):
        async with open_rig() as rig:
            raw = await rig.devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=10**15)
            async with open_gateway_client(rig) as client:
                answer = await rpc(client, "eth_sendRawTransaction", [raw], 1)
            assert answer["result"].startswith("0x") and len(answer["result"]) == 66, answer
            assert rig.calls("eth_sendRawTransaction") == [1, 0, 0]
            assert await txpool_pending(rig.devnet) == [1, 0, 0]


@pytest.mark.parametrize("scripted", [True, False], ids=["revert-fault", "real-revert"])
async def test_a_deterministic_error_takes_exactly_one_upstream_call(scripted: bool) -> None:
    call = {"from": DEV_ACCOUNTS[0], "data": REVERTING_INIT_CODE}
    with trio.fail_after(HANG_GUARD_S):
        async with open_rig() as rig:
            rig.proxies[0].fault = Fault.REVERT if scripted else None
            async with open_gateway_client(rig) as client:
                answer = await rpc(client, "eth_call", [call, "latest"], 7)
            assert answer["error"]["code"] == 3, answer
            assert "revert" in answer["error"]["message"], answer
            assert rig.calls("eth_call") == [1, 0, 0]
