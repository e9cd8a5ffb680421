"""FaultProxy's per-request delay, per-method faults and upstream headers (the battle's knobs).

No anvil: the "node" is a second FaultProxy whose fault answers locally (a JSON-RPC
revert), so the outer proxy's forwarding is real HTTP on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import msgspec
import trio

from lasso.chaos import Fault, FaultProxy, open_fault_proxy


@asynccontextmanager
async def chain() -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    """(outer, node): outer forwards to node, which answers every request with a revert."""
    async with open_fault_proxy("http://127.0.0.1:9") as node:
        node.fault = Fault.REVERT
        async with open_fault_proxy(node.url) as outer:
            yield outer, node


def body(method: str, rid: int = 1) -> bytes:
    return msgspec.json.encode({"jsonrpc": "2.0", "id": rid, "method": method, "params": []})


async def post(client: httpx.AsyncClient, url: str, method: str) -> httpx.Response:
    return await client.post(
        url, content=body(method), headers={"content-type": "application/json"}
    )


async def test_method_faults_take_precedence_for_their_method_only() -> None:
    async with chain() as (outer, node), httpx.AsyncClient() as client:
        outer.method_faults["eth_getLogs"] = Fault.RATE_LIMITED_429
        outer.retry_after_s = 3
        limited = await post(client, outer.url, "eth_getLogs")
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
        forwarded = await post(client, outer.url, "eth_call")
        assert forwarded.json()["error"]["code"] == 3  # the node's answer, forwarded
        assert node.calls == {"eth_call": 1}
        assert outer.statistics().injected == {"rate_limited_429": 1}


async def test_method_fault_overrides_the_global_fault_and_global_applies_to_the_rest() -> None:
    async with chain() as (outer, node), httpx.AsyncClient() as client:
        outer.fault = Fault.HTML_500
        outer.method_faults["eth_chainId"] = Fault.METHOD_NOT_FOUND
        not_found = await post(client, outer.url, "eth_chainId")
        assert not_found.json()["error"]["code"] == -32601
        html = await post(client, outer.url, "eth_call")
        assert html.status_code == 500 and html.headers["content-type"].startswith("text/html")
        assert node.calls.total() == 0


async def test_a_batch_meets_the_fault_of_a_listed_method() -> None:
    async with chain() as (outer, node), httpx.AsyncClient() as client:
        outer.method_faults["eth_getLogs"] = Fault.RATE_LIMITED_429
        batch = b"[" + body("eth_call") + b"," + body("eth_getLogs", 2) + b"]"
        answer = await client.post(outer.url, content=batch)
        assert answer.status_code == 429
        assert node.calls.total() == 0


async def test_method_fault_refused_resets_after_reading() -> None:
    async with chain() as (outer, node), httpx.AsyncClient() as client:
        outer.method_faults["eth_call"] = Fault.REFUSED
        try:
            await post(client, outer.url, "eth_call")
        except httpx.TransportError:
            pass
        else:
            raise AssertionError("a refused request got an answer")
        assert outer.calls == {"eth_call": 1}
        assert node.calls.total() == 0
        assert (await post(client, outer.url, "eth_chainId")).status_code == 200


async def test_delay_is_waited_before_answering() -> None:
    async with chain() as (outer, _node), httpx.AsyncClient() as client:
        outer.delay_s = 0.1
        started = trio.current_time()
        answer = await post(client, outer.url, "eth_call")
        assert answer.json()["error"]["code"] == 3
        assert trio.current_time() - started >= 0.1
        outer.delay_s = 0.0
        started = trio.current_time()
        await post(client, outer.url, "eth_call")
        assert trio.current_time() - started < 0.1


async def test_delay_ends_when_the_client_hangs_up_and_nothing_is_forwarded() -> None:
    async with chain() as (outer, node):
        outer.delay_s = 30.0
        with trio.fail_after(5):
            async with httpx.AsyncClient() as client:
                with trio.move_on_after(0.05):
                    await post(client, outer.url, "eth_call")
            # the client's connection is gone: the proxy's wait ends, it forwards nothing
            while outer.statistics().open_connections:  # noqa: ASYNC110 (bounded poll)
                await trio.sleep(0.01)
        assert outer.calls == {"eth_call": 1}
        assert node.calls.total() == 0


async def test_headers_go_upstream() -> None:
    seen: list[bytes] = []

    async def node(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        seen.append(data)
        answer = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        await stream.send_all(head % len(answer) + answer)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, node, 0)
        port = listeners[0].socket.getsockname()[1]
        keyed = {"authorization": "Bearer sekret"}
        async with (
            open_fault_proxy(f"http://127.0.0.1:{port}/v2/key", headers=keyed) as proxy,
            httpx.AsyncClient() as client,
        ):
            answer = await post(client, proxy.url, "eth_chainId")
            assert answer.json()["result"] == "0x1"
        nursery.cancel_scope.cancel()
    assert b"authorization: Bearer sekret" in seen[0].lower().replace(b"bearer", b"Bearer")
    assert seen[0].startswith(b"POST /v2/key ")


async def test_an_unreachable_node_is_a_502_or_a_reset() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now: the node is down
    async with open_fault_proxy(f"http://127.0.0.1:{port}") as proxy:
        async with httpx.AsyncClient() as client:
            answer = await post(client, proxy.url, "eth_call")
            assert answer.status_code == 502
        proxy.reset_when_upstream_down = True
        async with httpx.AsyncClient() as client:
            try:
                await post(client, proxy.url, "eth_call")
            except httpx.TransportError:
                pass
            else:
                raise AssertionError("an unreachable node got an answer")
