"""The web3.py workload: its outcome mapping, and a short run against Lasso on a devnet."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
import pytest
import trio
import websockets
from multidict import CIMultiDict, CIMultiDictProxy
from web3.exceptions import (
    BadResponseFormat,
    BlockNotFound,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from yarl import URL

from battle.chaindata import create_chain_data
from battle.events import Outcome, Recorder, SubscriptionEvent, SubscriptionKind
from battle.slo import compute
from battle.subs import subscription_stats
from battle.web3calls import Verdict, Wire, classify, failed_wire, providers_of
from battle.web3load import run_web3, with_meta
from battle.web3record import Clock, Sink
from battle.web3streams import _Filters, _poll_blocks
from lasso.chaos.tcpcut import open_tcp_relay
from lasso.devnet import open_devnet
from tests.support.front import devnet_settings, open_lasso


def answered(answer: dict[str, object], status: int = 200) -> Wire:
    return Wire("eth_call", 7, 1.0, answer=answer, answered_at=2.0, status=status)


def unanswered() -> Wire:
    return Wire("eth_call", 7, 1.0)


REVERT = {"jsonrpc": "2.0", "id": 7, "error": {"code": 3, "message": "execution reverted"}}
NULL = {"jsonrpc": "2.0", "id": 7, "result": None}


def response_error(status: int) -> aiohttp.ClientResponseError:
    info = aiohttp.RequestInfo(URL("http://x/"), "POST", CIMultiDictProxy(CIMultiDict()))
    return aiohttp.ClientResponseError(info, (), status=status)


def test_an_answer_is_a_result() -> None:
    assert classify(None, answered({"jsonrpc": "2.0", "id": 7, "result": "0x1"})) == Verdict(
        Outcome.RESULT, http_status=200
    )


@pytest.mark.parametrize("exc", [BlockNotFound("gone"), TransactionNotFound("gone")])
def test_web3_raising_on_a_null_result_is_an_empty_result(exc: Exception) -> None:
    verdict = classify(exc, answered(NULL))
    assert (verdict.outcome, verdict.empty_result) == (Outcome.RESULT, True)


def test_the_reverters_revert_is_an_expected_error_with_its_code() -> None:
    verdict = classify(
        ContractLogicError("execution reverted: nope"), answered(REVERT), expect_revert=True
    )
    assert verdict == Verdict(
        Outcome.JSONRPC_ERROR, error_code=3, http_status=200, error_expected=True
    )
    unexpected = classify(ContractLogicError("execution reverted"), answered(REVERT))
    assert unexpected.error_expected is False


def test_an_rpc_error_keeps_its_code() -> None:
    error = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32000, "message": "no provider"}}
    verdict = classify(Web3RPCError("no provider", rpc_response=error), answered(error))  # type: ignore[arg-type]
    assert verdict == Verdict(Outcome.JSONRPC_ERROR, error_code=-32000, http_status=200)


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (TimeExhausted("no answer for id 7"), Outcome.TIMEOUT),
        (TimeoutError(), Outcome.TIMEOUT),
        (aiohttp.ServerTimeoutError("read"), Outcome.TIMEOUT),
        (aiohttp.ServerDisconnectedError(), Outcome.TIMEOUT),
        (websockets.ConnectionClosedError(None, None), Outcome.TIMEOUT),
        (ProviderConnectionError("refused"), Outcome.TIMEOUT),
        (json.JSONDecodeError("bad", "<html>", 0), Outcome.NON_JSON),
        (BadResponseFormat("no jsonrpc"), Outcome.NON_JSON),
        (KeyError("number"), Outcome.NON_JSON),
    ],
)
def test_failures_map_to_outcomes(exc: Exception, outcome: Outcome) -> None:
    verdict = classify(exc, unanswered())
    assert verdict.outcome is outcome
    assert verdict.answered is (outcome is not Outcome.TIMEOUT)


def test_http_statuses_web3_raises_on() -> None:
    assert classify(response_error(503), unanswered()) == Verdict(Outcome.HTTP_5XX, http_status=503)
    assert classify(response_error(429), unanswered()) == Verdict(
        Outcome.JSONRPC_ERROR, http_status=429
    )


def test_a_failure_belongs_to_the_first_unanswered_request_else_to_the_call() -> None:
    # web3's eth_call asks eth_chainId before and after the call itself
    before = Wire("eth_chainId", 1, 1.0, answer={"jsonrpc": "2.0", "id": 1, "result": "0x1"})
    call = Wire("eth_call", 2, 1.1, answer=REVERT)
    after = Wire("eth_chainId", 3, 1.2)
    assert failed_wire(None, [before, call], "eth_call") is None
    assert failed_wire(TimeoutError(), [before, call, after], "eth_call") is after
    assert failed_wire(ContractLogicError("reverted"), [before, call], "eth_call") is call
    assert failed_wire(Web3RPCError("x"), [before], "eth_call") is before


def test_an_answer_web3_did_not_raise_on() -> None:
    assert classify(None, answered(NULL)) == Verdict(
        Outcome.RESULT, http_status=200, empty_result=True
    )
    assert classify(None, answered(REVERT)) == Verdict(
        Outcome.JSONRPC_ERROR, error_code=3, http_status=200
    )
    assert classify(None, answered({"id": 7, "result": "0x1"})).outcome is Outcome.NON_JSON


def test_routing_metadata_names_the_serving_provider() -> None:
    def header(meta: object) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(meta).encode()).rstrip(b"=")

    assert providers_of(header({"selected_provider": {"id": "n1"}})) == ["n1"]
    batch = [{"selected_provider": {"id": "n0"}}, {"selected_provider": None}]
    assert providers_of(header(batch)) == ["n0", None]
    error = {"retries": 1, "attempts": [{"provider": "n2", "message": "execution reverted"}]}
    assert providers_of(header(error)) == ["n2"]
    assert providers_of(header({"served_by": "lasso"})) == [None]
    assert providers_of(b"!!not base64!!") == []
    assert providers_of(None) == []


def test_meta_is_asked_for_in_the_query() -> None:
    assert with_meta("http://h:1/rpc/x") == "http://h:1/rpc/x?include_meta=headers"
    assert with_meta("http://h:1/rpc/x?a=1") == "http://h:1/rpc/x?a=1&include_meta=headers"


@dataclass(frozen=True)
class _Endpoint:
    http_url: str
    ws_url: str
    scenario: str


@pytest.mark.slow
@pytest.mark.integration
async def test_web3_drives_lasso_on_a_devnet() -> None:
    recorder = Recorder()
    duration_s = 4.0
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        with trio.fail_after(30):
            data = await create_chain_data(devnet)
        async with open_lasso(devnet_settings(devnet)) as base, trio.open_nursery() as nursery:
            await nursery.start(devnet.mine_every, 1.0)

            async def log_traffic() -> None:  # a call to the emitter with no calldata: a log
                while True:
                    raw = await devnet.sign_transfer(to=data.emitter, value_wei=0)
                    await devnet.send_raw_transaction(raw)
                    await trio.sleep(0.5)

            nursery.start_soon(log_traffic)
            endpoint = _Endpoint(
                f"{base}/rpc/devnet", base.replace("http", "ws", 1) + "/ws/rpc/devnet", "web3"
            )
            started = trio.current_time()
            with trio.fail_after(duration_s + 5):
                await run_web3(endpoint, recorder, duration_s, rps=25, data=data, seed=1)
            elapsed = trio.current_time() - started
            nursery.cancel_scope.cancel()
    recording = recorder.recording()
    requests = recording.requests
    clients = {r.client for r in requests}
    failures = [r for r in requests if r.outcome is not Outcome.RESULT and not r.error_expected]
    assert failures == []
    assert compute(recording).success_rate == 1.0
    assert {"web3-http", "web3-ws", "web3-batch", "web3-filter"} <= clients
    assert any(r.error_expected for r in requests), "the reverter was called"
    assert all(r.received_id == r.sent_id for r in requests)
    routed = ("eth_getLogs", "eth_call")  # a revert's provider is its attempt's
    assert all(
        r.provider is not None for r in requests if r.method in routed and r.client == "web3-http"
    )
    heads = [s for s in recording.subscriptions if s.client == "web3-ws"]
    assert len(heads) >= 2
    assert {s.kind for s in heads} == {SubscriptionKind.HEADS}
    filtered = {s.kind for s in recording.subscriptions if s.client == "web3-filter"}
    assert filtered == {SubscriptionKind.HEADS, SubscriptionKind.LOGS}, "filter changes came"
    stats = subscription_stats(recording.subscriptions)
    assert [(s.gaps, s.duplicates) for s in stats] == [(0, 0)] * len(stats)
    assert recording.heads
    assert elapsed < duration_s + 1.0


@pytest.mark.slow
@pytest.mark.integration
async def test_web3_reconnects_and_resubscribes_when_its_socket_is_cut() -> None:
    recorder = Recorder()
    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:  # noqa: SIM117
        async with (
            open_lasso(devnet_settings(devnet)) as base,
            open_tcp_relay(urlsplit(base).port or 0) as relay,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(devnet.mine_every, 0.5)
            endpoint = _Endpoint(
                f"{base}/rpc/devnet", f"ws://127.0.0.1:{relay.port}/ws/rpc/devnet", "cut"
            )

            async def cut_when_heads_come() -> None:
                with trio.fail_after(5):  # the heads come from another thread: poll, bounded
                    while not any(  # noqa: ASYNC110
                        s.client == "web3-ws" for s in recorder.recording().subscriptions
                    ):
                        await trio.sleep(0.05)
                relay.cut()
                relay.restore()

            nursery.start_soon(cut_when_heads_come)
            with trio.fail_after(10):
                await run_web3(endpoint, recorder, 4.0, rps=5, data=None, seed=2)
            nursery.cancel_scope.cancel()
    heads = [s for s in recorder.recording().subscriptions if s.client == "web3-ws"]
    streams = sorted({s.subscription for s in heads}, key=[s.subscription for s in heads].index)
    assert len(streams) == 2, "resubscribed on a new connection"
    assert relay.connections == 2
    after = [s.number for s in heads if s.subscription == streams[1]]
    assert len(after) >= 2
    stats = subscription_stats(heads)
    assert [(s.gaps, s.duplicates) for s in stats] == [(0, 0), (0, 0)]


@pytest.mark.slow
async def test_cancelled_from_trio_it_stops_within_a_second_and_keeps_what_it_recorded() -> None:
    # Nothing listens on the endpoint: every call fails at once, web3 keeps retrying to connect.
    recorder = Recorder()
    endpoint = _refused_endpoint("s")
    started = trio.current_time()
    with trio.move_on_after(1.0) as scope:
        await run_web3(endpoint, recorder, 60.0, rps=20, data=None, seed=3)
    assert scope.cancelled_caught
    assert trio.current_time() - started < 2.0
    requests = recorder.recording().requests
    assert requests, "events made before the cancellation were handed over"
    assert {r.outcome for r in requests} == {Outcome.TIMEOUT}  # no answer: connection refused
    assert all(r.answered_at is None and r.scenario == "s" for r in requests)


class _FakeEth:
    def __init__(self, polls: list[list[bytes]], blocks: dict[str, int]) -> None:
        self.polls, self.blocks, self.down = polls, blocks, {"0x" + "02" * 32}

    async def get_filter_changes(self, filter_id: str) -> list[bytes]:
        return self.polls.pop(0)

    async def get_block(self, block_hash: str) -> dict[str, object]:
        if block_hash in self.down:
            self.down.clear()  # fails once
            raise TimeoutError
        number = self.blocks[block_hash]
        return {"number": number, "parentHash": bytes([number - 1]) * 32}


def test_a_failed_block_lookup_waits_for_the_next_poll_in_order() -> None:
    hashes = [bytes([n]) * 32 for n in (1, 2, 3)]
    eth = _FakeEth([hashes[:2], hashes[2:]], {"0x" + h.hex(): h[0] for h in hashes})
    w3 = SimpleNamespace(eth=eth)
    sink = Sink("s", Clock(0.0))
    state = _Filters(block="0xf1")

    async def two_polls() -> None:
        await _poll_blocks(w3, sink, state)  # type: ignore[arg-type]
        await _poll_blocks(w3, sink, state)  # type: ignore[arg-type]

    asyncio.run(two_polls())
    heads = [e for e in sink.events if isinstance(e, SubscriptionEvent)]
    assert [(h.number, h.subscription) for h in heads] == [(1, "0xf1"), (2, "0xf1"), (3, "0xf1")]
    assert subscription_stats(heads)[0].gaps == 0


def _refused_endpoint(scenario: str) -> _Endpoint:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    return _Endpoint(f"http://127.0.0.1:{port}/rpc/x", f"ws://127.0.0.1:{port}/ws/rpc/x", scenario)


@pytest.mark.slow
async def test_a_bug_in_the_web3_thread_is_raised_not_swallowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("harness bug")

    monkeypatch.setattr("battle.web3load.run_filters", broken)
    started = trio.current_time()
    with pytest.raises(RuntimeError, match="harness bug"):
        await run_web3(_refused_endpoint("s"), Recorder(), 60.0, rps=1, data=None, seed=4)
    assert trio.current_time() - started < 2.0


def test_importing_the_web3_workload_leaves_the_recursion_limit_alone() -> None:
    # web3's py_ecc sets it to 100,000 on import; battle.web3calls puts the default back
    assert sys.getrecursionlimit() == 1000
