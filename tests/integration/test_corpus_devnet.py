"""Differential transparency: the corpus through Lasso answers exactly as a node does.

A client must not be able to tell Lasso from a healthy node. Every request of
:mod:`lasso.corpus` (a few hundred, valid and invalid, in the families
of the execution-apis test corpus) goes to one node directly, then through
Lasso over HTTP and over its client WebSocket, on a 3-node lockstep devnet
behind the real front end, one at a time and in batches. Each answer must be
the node's bytes: the id, the result, the error code, message and data, and
over HTTP the status. Lasso may forward over the node's HTTP or WebSocket,
and anvil words unparseable requests differently on the two, so the node's
answer over its own WebSocket counts as the node's answer too.

A second node answers too, as a check of the corpus itself: lockstep nodes
hold the same chain, so a request two nodes answer differently cannot be
compared byte for byte and must be marked volatile in the corpus, with why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from lasso.core.methods import BLOCKED, WS_ONLY
from lasso.corpus import (
    Answer,
    ChainFacts,
    CorpusRequest,
    Difference,
    Tx,
    batch_body,
    batch_differences,
    build_corpus,
    difference,
    seed_chain,
    table,
)
from lasso.devnet import open_devnet
from tests.support.front import devnet_settings, open_lasso

JSON = {"content-type": "application/json"}


BATCH = 50  # the default [server] max_batch


async def post(client: httpx.AsyncClient, url: str, body: bytes) -> Answer:
    response = await client.post(url, content=body, headers=JSON)
    return Answer(response.status_code, response.content)


async def exchange(ws: WebSocketConnection, body: bytes) -> Answer:
    await ws.send_message(body.decode())
    message = await ws.get_message()
    return Answer(None, message.encode() if isinstance(message, str) else message)


@dataclass
class Replay:
    """One client talking to a node (HTTP and WS), a second node, and Lasso (HTTP and WS)."""

    client: httpx.AsyncClient
    node: str
    twin: str
    lasso: str
    node_ws: WebSocketConnection
    lasso_ws: WebSocketConnection
    differences: list[Difference] = field(default_factory=list)
    unstable: list[Difference] = field(default_factory=list)

    async def one(self, request: CorpusRequest) -> None:
        direct = await post(self.client, self.node, request.body)
        direct_ws = await exchange(self.node_ws, request.body)
        if found := difference(
            request, "twin", direct, await post(self.client, self.twin, request.body)
        ):
            self.unstable.append(found)
        via_http = await post(self.client, self.lasso, request.body)
        via_ws = await exchange(self.lasso_ws, request.body)
        for found in (
            difference(request, "http", direct, via_http, direct_ws),
            difference(request, "ws", direct, via_ws, direct_ws),
        ):
            if found is not None:
                self.differences.append(found)

    async def batch(self, requests: list[CorpusRequest]) -> None:
        body = batch_body(requests)
        direct = await post(self.client, self.node, body)
        direct_ws = await exchange(self.node_ws, body)
        via_http = await post(self.client, self.lasso, body)
        via_ws = await exchange(self.lasso_ws, body)
        self.differences += batch_differences(requests, "http-batch", direct, via_http, direct_ws)
        self.differences += batch_differences(requests, "ws-batch", direct, via_ws, direct_ws)


@pytest.mark.integration
@pytest.mark.slow
async def test_the_corpus_through_lasso_is_the_nodes_answers_byte_for_byte() -> None:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        with trio.fail_after(30):
            facts = await seed_chain(devnet)
        corpus = build_corpus(facts)
        assert len(corpus) >= 230
        async with open_lasso(devnet_settings(devnet)) as base:
            ws_url = base.replace("http://", "ws://", 1) + "/ws/rpc/devnet"
            async with (
                httpx.AsyncClient(trust_env=False) as client,
                open_websocket_url(devnet.nodes[0].ws_url) as node_ws,
                open_websocket_url(ws_url) as lasso_ws,
            ):
                replay = Replay(
                    client,
                    devnet.nodes[0].http_url,
                    devnet.nodes[2].http_url,
                    f"{base}/rpc/devnet",
                    node_ws,
                    lasso_ws,
                )
                with trio.fail_after(60):
                    for request in corpus:
                        await replay.one(request)
                    for start in range(0, len(corpus), BATCH):
                        await replay.batch(corpus[start : start + BATCH])
    if replay.unstable:
        pytest.fail("the corpus is not deterministic across nodes:\n" + table(replay.unstable))
    if replay.differences:
        asked = f"{len(corpus)} requests, each over http and ws, alone and in batches of {BATCH}"
        pytest.fail(f"of {asked}: " + table(replay.differences))


# --- the corpus and the comparison, without a devnet ---------------------------


def fake_facts() -> ChainFacts:
    hashes = tuple(f"0x{n:064x}" for n in range(7))
    kinds = ("transfer", "legacy", "deploy_emitter", "log", "reverted")
    txs = tuple(
        Tx(f"0x{0xAA00 + i:064x}", f"0x02f8{i:02x}", 2 + i // 2, hashes[2 + i // 2], i % 2, kind)
        for i, kind in enumerate(kinds)
    )
    used_nonce = ("0x02f802", "0xf802")
    return ChainFacts(hashes, txs, "0x" + "e1" * 20, "0x" + "e2" * 20, 3, 4, "0x02f801", used_nonce)


def test_the_corpus_is_large_valid_json_rpc_with_distinct_varied_ids() -> None:
    corpus = build_corpus(fake_facts())
    assert len(corpus) >= 230
    envelopes = [json.loads(r.body) for r in corpus]
    assert all(
        e["jsonrpc"] == "2.0" and e["method"] == r.method
        for e, r in zip(envelopes, corpus, strict=True)
    )
    ids = [e["id"] for e in envelopes]
    assert len({json.dumps(i) for i in ids}) == len(ids)
    numbers = [i for i in ids if isinstance(i, int)]
    assert 0 in numbers and any(-10 < i < 0 for i in numbers)
    # Near both int64 limits (anvil refuses ids past them), and past 2**53.
    assert -(2**63) <= min(numbers) < -(2**62) and 2**62 < max(numbers) < 2**63
    assert any(2**53 < i < 2**54 for i in numbers) and any(isinstance(i, str) for i in ids)
    assert "" in ids
    methods = {r.method for r in corpus}
    assert not methods & (BLOCKED | WS_ONLY)
    assert not any(m.startswith(("anvil_", "evm_", "hardhat_")) for m in methods)
    assert {"eth_getLogs", "eth_call", "eth_simulateV1", "debug_traceTransaction"} <= methods
    assert [r.name for r in corpus if r.volatile] == ["eth_getBlockByNumber/get-pending"]


REQUEST = CorpusRequest("eth_x/case", "eth_x", b'{"id":1}', 1)
NODE = Answer(200, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}')


@pytest.mark.parametrize(
    ("lasso", "cause"),
    [
        (NODE, None),
        (Answer(None, NODE.body), None),
        (Answer(503, NODE.body), "HTTP status 200 -> 503"),
        (
            Answer(200, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"All"}}'),
            "error code -32601 -> -32000",
        ),
        (
            Answer(200, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"No"}}'),
            "error message",
        ),
        (Answer(200, b'{"jsonrpc":"2.0","id":2,"result":"0x1"}'), "id changed"),
        (Answer(200, b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'), "node error -> Lasso result"),
        (Answer(200, NODE.body.replace(b'"id":1', b'"id":1.0')), "id changed"),
        (Answer(200, b"<html>"), "not JSON"),
    ],
)
def test_a_difference_names_its_cause(lasso: Answer, cause: str | None) -> None:
    found = difference(REQUEST, "http", NODE, lasso)
    assert (found and found.cause) == cause


def test_the_nodes_websocket_wording_counts_as_the_nodes_answer() -> None:
    ws_wording = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"untagged"}}'
    assert (
        difference(REQUEST, "ws", NODE, Answer(None, ws_wording), Answer(None, ws_wording)) is None
    )
    found = difference(REQUEST, "ws", NODE, Answer(None, b"{}"), Answer(None, ws_wording))
    assert found is not None
    assert "node/ws: " + ws_wording.decode() in table([found])


def test_id_spelling_and_volatile_shapes() -> None:
    node = Answer(200, '{"jsonrpc":"2.0","id":"é","result":{"t":"0x1"}}'.encode())
    spelled = Answer(200, b'{"jsonrpc":"2.0","id":"\\u00e9","result":{"t":"0x1"}}')
    found = difference(REQUEST, "http", node, spelled)
    assert found is not None and found.cause == "id spelled differently (same value)"
    volatile = CorpusRequest("eth_x/pending", "eth_x", b"{}", "é", volatile="built at ask time")
    later = Answer(200, '{"jsonrpc":"2.0","id":"é","result":{"t":"0x2"}}'.encode())
    assert difference(volatile, "http", node, later) is None
    reshaped = Answer(200, '{"jsonrpc":"2.0","id":"é","result":{"t":2}}'.encode())
    assert difference(volatile, "http", node, reshaped) is not None


def test_the_table_shows_each_request_and_both_answers() -> None:
    lasso = Answer(200, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"All"}}')
    found = difference(REQUEST, "http", NODE, lasso)
    assert found is not None
    text = table([found])
    assert text.splitlines()[:2] == [
        "1 answers differ from the node's:",
        "     1  http  error code -32601 -> -32000",
    ]
    assert "[http] eth_x/case  (error code -32601 -> -32000)" in text
    assert "  node:    " + NODE.body.decode() in text
    assert "  lasso:   " + lasso.body.decode() in text


def test_a_batch_is_compared_item_by_item_then_framed_as_the_nodes() -> None:
    first = CorpusRequest("eth_a/1", "eth_a", b'{"id":1}', 1)
    second = CorpusRequest("eth_b/2", "eth_b", b'{"id":2}', 2)
    ok = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
    node = Answer(200, b"[" + ok + b"," + NODE.body.replace(b'"id":1', b'"id":2') + b"]")
    assert batch_differences([first, second], "http-batch", node, node) == []
    rewritten = b'{"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"All"}}'
    found = batch_differences(
        [first, second], "http-batch", node, Answer(200, b"[" + ok + b"," + rewritten + b"]")
    )
    assert [(d.request.name, d.cause) for d in found] == [
        ("eth_b/2", "error code -32601 -> -32000")
    ]
    spaced = Answer(200, node.body.replace(b",{", b", {"))
    assert [d.cause for d in batch_differences([first, second], "ws-batch", node, spaced)] == [
        "batch framing"
    ]
    short = Answer(200, b"[" + ok + b"]")
    assert [d.cause for d in batch_differences([first, second], "ws-batch", node, short)] == [
        "batch not answered item for item"
    ]
