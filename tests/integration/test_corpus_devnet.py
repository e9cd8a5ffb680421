"""Differential transparency: the corpus through Lasso answers exactly as a node does.

A client must not be able to tell Lasso from a healthy node. Every request of
:mod:`lasso.testing.corpus` (a few hundred, valid and invalid, in the families
of the execution-apis test corpus) goes to one node directly, then through
Lasso over HTTP and over its client WebSocket, on a 3-node lockstep devnet
behind the real front end. Each answer must be the node's bytes: the id,
the result, the error code, message and data, and over HTTP the status.

A second node answers too, as a check of the corpus itself: lockstep nodes
hold the same chain, so a request two nodes answer differently cannot be
compared byte for byte and must be marked volatile in the corpus, with why.
"""

from __future__ import annotations

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from lasso.config import Settings, parse_settings
from lasso.daemon import serve
from lasso.devnet import Devnet, open_devnet
from lasso.testing.corpus import Answer, Difference, build_corpus, difference, seed_chain, table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JSON = {"content-type": "application/json"}


def devnet_settings(devnet: Devnet) -> Settings:
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", priority = {n.index} }}'
        for n in devnet.nodes
    )
    return parse_settings(
        f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n{providers}\n]\n",
        env={},
    )


async def post(client: httpx.AsyncClient, url: str, body: bytes) -> Answer:
    response = await client.post(url, content=body, headers=JSON)
    return Answer(response.status_code, response.content)


async def exchange(ws: WebSocketConnection, body: bytes) -> Answer:
    await ws.send_message(body.decode())
    message = await ws.get_message()
    return Answer(None, message.encode() if isinstance(message, str) else message)


async def test_the_corpus_through_lasso_is_the_nodes_answers_byte_for_byte() -> None:
    differences: list[Difference] = []
    unstable: list[Difference] = []
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        with trio.fail_after(30):
            facts = await seed_chain(devnet)
        corpus = build_corpus(facts)
        assert len(corpus) >= 230
        async with trio.open_nursery() as nursery:
            shutdown = trio.Event()
            binds = await nursery.start(
                lambda task_status: serve(
                    devnet_settings(devnet),
                    host="127.0.0.1",
                    port=0,
                    shutdown=shutdown,
                    task_status=task_status,
                )
            )
            base = binds[0]
            ws_url = base.replace("http://", "ws://", 1) + "/ws/rpc/devnet"
            node, twin = devnet.nodes[0].http_url, devnet.nodes[2].http_url
            async with httpx.AsyncClient(trust_env=False) as client:
                with trio.fail_after(60):
                    async with (
                        open_websocket_url(devnet.nodes[0].ws_url) as node_ws,
                        open_websocket_url(ws_url) as lasso_ws,
                    ):
                        for request in corpus:
                            direct = await post(client, node, request.body)
                            direct_ws = await exchange(node_ws, request.body)
                            again = await post(client, twin, request.body)
                            if found := difference(request, "twin", direct, again):
                                unstable.append(found)
                            via_http = await post(client, f"{base}/rpc/devnet", request.body)
                            if found := difference(request, "http", direct, via_http, direct_ws):
                                differences.append(found)
                            via_ws = await exchange(lasso_ws, request.body)
                            if found := difference(request, "ws", direct, via_ws, direct_ws):
                                differences.append(found)
            shutdown.set()
    if unstable:
        pytest.fail("the corpus is not deterministic across nodes:\n" + table(unstable))
    if differences:
        pytest.fail(f"of {len(corpus)} requests, " + table(differences))
