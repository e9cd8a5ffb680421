"""One conformance suite for every way a Provider can reach a node.

The same checks run against three targets:

    anvil        a real anvil node (a one-node devnet) through HttpTransport
    fake         FakeNode through FakeHttpTransport
    fault-proxy  a real anvil node behind FaultProxy (no fault) through HttpTransport

A fake that fails a check the real node passes is a bug in the fake: tests
written on the fake would then assert behaviour no provider has.

Then the fault vocabulary is held to the same standard: each Fault scripted in
FakeNode and the same Fault put on the wire by FaultProxy must reach a
Provider as the same classified error.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import trio

from lasso.chaos.faultproxy import open_fault_proxy
from lasso.chaos.faults import Fault
from lasso.config import CircuitBreakerConfig, ProviderConfig
from lasso.devnet import DEV_ACCOUNTS, open_devnet
from lasso.errors import (
    UpstreamError,
    UpstreamNetworkError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRpcError,
)
from lasso.upstream.http import HttpResponse, HttpTransport, PostTransport
from lasso.upstream.provider import Provider
from tests.support.fakes import FakeHttpTransport, FakeNode, WrappedTransport

HANG_GUARD_S = 10.0
QUANTITY = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)\Z")
HASH = re.compile(r"0x[0-9a-f]{64}\Z")
CONCURRENT = 50
REAL = (pytest.mark.integration, pytest.mark.slow)


class Recording(WrappedTransport):
    """A PostTransport that keeps the last answer of the transport it wraps."""

    def __init__(self, inner: PostTransport) -> None:
        super().__init__(inner)
        self.last: HttpResponse | None = None

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        self.last = await self.inner.post(body, replay_safe=replay_safe)
        return self.last


@dataclass
class Target:
    provider: Provider
    recording: Recording
    real: bool


def make_provider(transport: PostTransport) -> tuple[Provider, Recording]:
    recording = Recording(transport)
    config = ProviderConfig(id="under-test", url="http://127.0.0.1:1")
    provider = Provider(
        config, order=0, breaker=CircuitBreakerConfig(), rng=random.Random(1), http=recording
    )
    return provider, recording


@asynccontextmanager
async def http_target(url: str) -> AsyncIterator[Target]:
    provider, recording = make_provider(HttpTransport(url, {}, provider_id="under-test"))
    try:
        yield Target(provider, recording, real=True)
    finally:
        await provider.http.aclose()


@asynccontextmanager
async def open_target(kind: str) -> AsyncIterator[Target]:
    if kind == "fake":
        provider, recording = make_provider(FakeHttpTransport(FakeNode(), "under-test"))
        yield Target(provider, recording, real=False)
        return
    async with open_devnet(nodes=1, block_time_s=None) as devnet:
        for _ in range(CONCURRENT):  # blocks 0..50, so concurrent reads can all differ
            await devnet.mine()
        if kind == "anvil":
            async with http_target(devnet.nodes[0].http_url) as target:
                yield target
            return
        async with (
            open_fault_proxy(devnet.nodes[0].http_url) as proxy,
            http_target(proxy.url) as target,
        ):
            yield target
        assert proxy.statistics().injected == {}


def decode(raw: bytes) -> Any:
    return msgspec.json.decode(raw)


class _Envelope(msgspec.Struct):
    result: msgspec.Raw = msgspec.Raw(b"")


# --- the checks: each takes a Target and raises AssertionError on a mismatch ---


async def check_chain_id(target: Target) -> None:
    result, _ = await target.provider.request("eth_chainId", b"[]")
    assert decode(result) == "0x7a69"


async def check_block_number_is_the_providers_bytes(target: Target) -> None:
    result, _ = await target.provider.request("eth_blockNumber", b"[]")
    assert QUANTITY.match(decode(result)), result
    assert target.recording.last is not None
    upstream = target.recording.last.body
    assert bytes(msgspec.json.decode(upstream, type=_Envelope).result) == result
    assert b'"result":' + result in upstream  # the very bytes, not a re-encoding


async def check_balance(target: Target) -> None:
    params = b'["%b","latest"]' % DEV_ACCOUNTS[0].encode()
    result, _ = await target.provider.request("eth_getBalance", params)
    assert QUANTITY.match(decode(result)), result
    assert int(decode(result), 16) > 0


async def check_latest_block(target: Target) -> None:
    result, _ = await target.provider.request("eth_getBlockByNumber", b'["latest",false]')
    block = decode(result)
    assert QUANTITY.match(block["number"]), block
    assert HASH.match(block["hash"]), block


async def check_block_tags(target: Target) -> None:
    blocks = {}
    for tag in ("earliest", "finalized", "safe", "latest", "pending"):
        params = b'["%b",false]' % tag.encode()
        blocks[tag] = decode((await target.provider.request("eth_getBlockByNumber", params))[0])
    numbers = [int(blocks[tag]["number"], 16) for tag in blocks]
    assert numbers[0] == 0
    assert numbers == sorted(numbers), blocks
    assert numbers[-1] == numbers[-2] + 1  # pending is the block being built
    assert blocks["earliest"]["parentHash"] == "0x" + "0" * 64


async def check_bad_block_number_is_invalid_params(target: Target) -> None:
    with pytest.raises(UpstreamRpcError) as caught:
        await target.provider.request("eth_getBlockByNumber", b'["0xzz",false]')
    assert caught.value.rpc_code == -32602
    assert caught.value.category == "deterministic"


async def check_future_block_is_null(target: Target) -> None:
    result, _ = await target.provider.request("eth_getBlockByNumber", b'["0xffffffff",false]')
    assert result == b"null"


async def check_unknown_method(target: Target) -> None:
    with pytest.raises(UpstreamRpcError) as caught:
        await target.provider.request("lasso_noSuchMethod", b"[]")
    assert caught.value.rpc_code == -32601
    assert caught.value.category == "capability"
    assert caught.value.provider_id == "under-test"


#: Params too deep for anvil to read (its serde_json stops at 128 levels).
UNREADABLE_PARAMS = b"[" * 200 + b"]" * 200


async def check_an_unreadable_request_is_the_clients_error(target: Target) -> None:
    # anvil answers -32600 with a null id: the answer to our one request, and the
    # client's fault, so the client gets it unchanged and no breaker counts it.
    with pytest.raises(UpstreamRpcError) as caught:
        await target.provider.request("eth_blockNumber", UNREADABLE_PARAMS)
    assert caught.value.raw_error == b'{"code":-32600,"message":"Invalid request"}'
    assert (caught.value.rpc_code, caught.value.category) == (-32600, "deterministic")


async def check_concurrent_answers_are_correlated(target: Target) -> None:
    head = int(decode((await target.provider.request("eth_blockNumber", b"[]"))[0]), 16)
    numbers = [i % (head + 1) for i in range(CONCURRENT)]
    answers: dict[int, Any] = {}

    async def fetch(slot: int) -> None:
        params = b'["%b",false]' % hex(numbers[slot]).encode()
        result, _ = await target.provider.request("eth_getBlockByNumber", params)
        answers[slot] = decode(result)

    async with trio.open_nursery() as nursery:
        for slot in range(CONCURRENT):
            nursery.start_soon(fetch, slot)
    assert len(answers) == CONCURRENT
    assert [int(answers[s]["number"], 16) for s in range(CONCURRENT)] == numbers
    assert len({answers[s]["hash"] for s in range(CONCURRENT)}) == len(set(numbers))


async def check_latency(target: Target) -> None:
    _, latency_us = await target.provider.request("eth_blockNumber", b"[]")
    assert latency_us > 0 if target.real else latency_us >= 0


CHECKS: list[Callable[[Target], Awaitable[None]]] = [
    check_chain_id,
    check_block_number_is_the_providers_bytes,
    check_balance,
    check_latest_block,
    check_block_tags,
    check_bad_block_number_is_invalid_params,
    check_future_block_is_null,
    check_unknown_method,
    check_an_unreadable_request_is_the_clients_error,
    check_concurrent_answers_are_correlated,
    check_latency,
]
TARGETS = [
    pytest.param("anvil", marks=REAL),
    pytest.param("fake"),
    pytest.param("fault-proxy", marks=REAL),
]


@pytest.mark.parametrize("kind", TARGETS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_conformance(kind: str, check: Callable[[Target], Awaitable[None]]) -> None:
    with trio.fail_after(HANG_GUARD_S):
        async with open_target(kind) as target:
            await check(target)


# --- faults: FakeNode's script and FaultProxy's wire must look the same ---

BLOCK_NUMBER = ("eth_blockNumber", b"[]")


def describe(exc: UpstreamError) -> tuple[Any, ...]:
    """What the dispatcher acts on: the error type and its classification."""
    if isinstance(exc, UpstreamRpcError):
        return type(exc), exc.rpc_code, exc.category
    if isinstance(exc, UpstreamRateLimited):
        return type(exc), exc.retry_after_ms
    if isinstance(exc, UpstreamNetworkError):
        return type(exc), exc.never_sent
    return (type(exc),)


async def outcome_of(provider: Provider) -> tuple[Any, ...]:
    """The classified error of one eth_blockNumber, or ("hang",) if none within 0.3 s."""
    with trio.move_on_after(0.3):
        try:
            await provider.request(*BLOCK_NUMBER)
        except UpstreamError as exc:
            return describe(exc)
        return ("answered",)
    return ("hang",)


EXPECTED = {
    Fault.HTML_500: (UpstreamProtocolError,),
    Fault.RESET: (UpstreamNetworkError, False),
    Fault.FORWARD_THEN_RESET: (UpstreamNetworkError, False),
    Fault.HANG: ("hang",),
    Fault.TRUNCATED_JSON: (UpstreamProtocolError,),
    Fault.WRONG_ID: (UpstreamProtocolError,),
    Fault.RATE_LIMITED_429: (UpstreamRateLimited, 7000),
    Fault.METHOD_NOT_FOUND: (UpstreamRpcError, -32601, "capability"),
    Fault.REVERT: (UpstreamRpcError, 3, "deterministic"),
}


def test_every_fault_but_refused_is_compared() -> None:
    # REFUSED cannot be scripted per request on a real listener: FaultProxy
    # emulates it with a reset before reading, which is not never_sent.
    assert set(EXPECTED) == set(Fault) - {Fault.REFUSED}


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("fault", list(EXPECTED), ids=lambda f: f.value)
async def test_fault_on_the_wire_matches_the_fake(fault: Fault) -> None:
    node = FakeNode()
    node.fault = fault
    fake, _ = make_provider(FakeHttpTransport(node, "under-test"))
    with trio.fail_after(HANG_GUARD_S):
        async with (
            open_devnet(nodes=1, block_time_s=None) as devnet,
            open_fault_proxy(devnet.nodes[0].http_url) as proxy,
            http_target(proxy.url) as wire,
        ):
            assert await outcome_of(wire.provider) == ("answered",)  # a warm connection
            proxy.fault = fault
            on_the_wire = await outcome_of(wire.provider)
            proxy.fault = None
            after = await outcome_of(wire.provider)
            assert proxy.calls["eth_blockNumber"] == 3
    assert await outcome_of(fake) == on_the_wire == EXPECTED[fault]
    assert after == ("answered",)  # the proxy and the transport recover
