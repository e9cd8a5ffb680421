"""One provider's probe against a scripted client: what a stuck, odd or wrong node yields.

The client is a leaf fake (the real one is exercised on anvil in
tests/integration/test_probe_devnet.py); time is trio's MockClock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from lasso.config import ProviderConfig
from lasso.core.probe_methods import Verdict
from lasso.errors import UpstreamRpcError, UpstreamTimeout
from lasso.probe.run import ProbeOptions, _ProviderProbe

HEAD = 100
BLOCK = {"number": hex(HEAD), "hash": "0x" + "ab" * 32, "miner": "0x" + "11" * 20,
         "transactions": []}  # fmt: skip

Script = Callable[[str, list[Any]], Any]


def rpc_error(code: int, message: str, reason: str) -> UpstreamRpcError:
    return UpstreamRpcError(
        message, provider_id="p", rpc_code=code, raw_error=b"{}", category="", reason=reason
    )


class ScriptedClient:
    """Answers like a healthy anvil unless ``script`` answers (or raises) first."""

    def __init__(self, script: Script | None = None, chain_id: int = 31337) -> None:
        self.script = script
        self.chain_id = chain_id
        self.calls: list[str] = []

    async def call(self, method: str, params: list[Any]) -> bytes:
        self.calls.append(method)
        await trio.sleep(0.001)
        if self.script is not None:
            answer = self.script(method, params)
            if answer == "hang":  # as DirectClient: each call has its own deadline
                await trio.sleep(5.0)
                raise UpstreamTimeout(f"no answer to {method} within 5 s")
            if answer is not None:
                return msgspec.json.encode(answer)
        defaults = {"eth_chainId": hex(self.chain_id), "eth_blockNumber": hex(HEAD)}
        return msgspec.json.encode(defaults.get(method, BLOCK if "Block" in method else "0x0"))

    async def call_json(self, method: str, params: list[Any]) -> Any:
        return msgspec.json.decode(await self.call(method, params))

    async def supports_batch(self) -> tuple[bool | None, str]:
        return True, ""

    async def aclose(self) -> None:
        pass


async def probed(client: ScriptedClient, deadline_s: float = 60.0) -> Any:
    config = ProviderConfig(id="p", url="http://127.0.0.1:1")
    options = ProbeOptions(call_timeout_s=5.0, provider_deadline_s=deadline_s)
    probe = _ProviderProbe(config, client, options)  # type: ignore[arg-type]
    await probe.run_within_deadline(31337)
    return probe.report(0.0)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def timeout_for(method: str) -> Script:
    def script(called: str, params: list[Any]) -> Any:
        if called == method:
            raise UpstreamTimeout(f"no answer to {method} within 5 s")
        return None

    return script


async def test_a_node_too_slow_for_even_one_block_of_logs_has_no_measured_limit() -> None:
    report = await probed(ScriptedClient(timeout_for("eth_getLogs")))
    assert report.logs.limit is None and not report.logs.unlimited
    assert report.logs.detail.startswith("eth_getLogs over 1 block: UpstreamTimeout")
    assert report.logs.probes == 1  # the bound timed out (a limit), then one block did too


async def test_a_wide_range_that_times_out_counts_as_over_the_limit() -> None:
    def script(method: str, params: list[Any]) -> Any:
        if method == "eth_getLogs" and params[0].get("address"):
            span = int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) + 1
            if span > 30:
                raise UpstreamTimeout("no answer within 5 s")
            return []
        return None

    report = await probed(ScriptedClient(script))
    assert (report.logs.limit, report.logs.named) == (30, False)


async def test_an_odd_error_on_old_state_leaves_archival_unknown() -> None:
    def script(method: str, params: list[Any]) -> Any:
        if method == "eth_getBalance" and params[1] == "0x1":
            raise rpc_error(-32603, "internal error", "internal_error")
        return None

    report = await probed(ScriptedClient(script))
    assert (report.archival.full, report.archival.earliest) == (None, None)
    assert report.archival.detail == "eth_getBalance at 1: -32603 internal error"


async def test_a_node_that_stalls_is_stopped_by_the_provider_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def script(method: str, params: list[Any]) -> Any:
        return None if method in ("eth_chainId", "eth_getBlockByNumber") else "hang"

    start = trio.current_time()
    report = await probed(ScriptedClient(script), deadline_s=7.0)
    assert trio.current_time() - start == pytest.approx(7.0)
    assert report.answered
    assert report.notes == ("stopped after the 7 s provider deadline",)
    # 4 at a time, in no set order: four stalled calls timed out at 5 s, the next four
    # were cut off by the deadline, the rest never started
    # eth_getBlockByNumber answers at once too: "yes" when it was started in time
    answering = ("eth_chainId", "eth_getBlockByNumber")
    stalled = [m for m in report.methods if m.method not in answering]
    assert all(m.verdict is Verdict.UNKNOWN for m in stalled)
    timed_out = [m for m in stalled if m.detail.startswith("UpstreamTimeout: no answer to ")]
    assert len(timed_out) == 4
    assert {m.detail for m in stalled if m not in timed_out} == {"not probed in time"}
    assert report.archival.detail == "eth_getBalance at 100: UpstreamTimeout: no answer to eth_getBalance within 5 s"  # fmt: skip
    assert report.logs.detail == "not finished"


async def test_a_node_of_another_chain_is_noted() -> None:
    report = await probed(ScriptedClient(chain_id=1))
    assert report.notes == ("chain id 1, but the chain is configured 31337",)


async def test_a_node_whose_latest_block_is_null_did_not_answer() -> None:
    def script(method: str, params: list[Any]) -> Any:
        return "null" if method == "eth_getBlockByNumber" else None

    report = await probed(ScriptedClient(script))
    assert not report.answered
    assert report.error.startswith("ValueError: eth_getBlockByNumber(latest) answered")
