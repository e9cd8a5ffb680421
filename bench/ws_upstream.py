"""A tiny instant JSON-RPC WebSocket upstream for benchmarks, on trio-websocket.

Every request is answered at once, echoing its ``id``: ``eth_chainId`` with
``0x7a69`` (31337, the benchmark chain), ``eth_subscribe`` with a fresh
subscription id, ``eth_unsubscribe`` with ``true``, ``eth_getBlockByNumber``
with a block it has emitted (or ``null``), anything else with ``0x121eac0``.

Two control methods drive the fan-out benchmark (any connection may send
them; the harness connects on ``/control`` so it is not counted as a client):

``bench_emitHead``
    build the next head, JSON-encode it once, read ``time.monotonic()``
    (``emitted_at``), then send it as an ``eth_subscription`` notification to
    every ``newHeads`` subscription; ``arrived_at`` is ``time.monotonic()`` once
    the first of those sends returned: on loopback the frame is then in the
    gateway's socket (the earliest such time, so latencies measured from it are
    never flattered). Answers ``{"number", "emitted_at", "arrived_at",
    "subscribers", "head_bytes"}``. The heads look like anvil's live newHeads (the same 27
    fields in anvil's order, ``logsBloom`` 512 hex digits) and are linked:
    each is number + 1 of the previous one and its ``parentHash`` is the
    previous ``hash``, so the gateway's gap and reorg checks deliver each one.
``bench_stats``
    ``{"connections", "subscriptions", "requests"}``, not counting ``/control``
    connections (``requests``: calls answered since start).

Run: ``python -m bench.ws_upstream [PORT]`` (prints ``ready PORT``); 127.0.0.1
only, port 0 (the default) lets the kernel pick.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import sys
import time
from functools import partial
from typing import Any

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

CHAIN_ID = "0x7a69"
INSTANT_RESULT = "0x121eac0"
FIRST_HEAD = 0x121EAC1
_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _h(label: str, number: int) -> str:
    return "0x" + hashlib.sha256(b"%s-%d" % (label.encode(), number)).hexdigest()


def block_hash(number: int) -> str:
    return _h("block", number)


def make_head(number: int) -> dict[str, Any]:
    """One head shaped like anvil 1.x's live newHeads payload (27 fields, anvil's order)."""
    return {
        "hash": block_hash(number),
        "parentHash": block_hash(number - 1),
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "miner": "0x0000000000000000000000000000000000000000",
        "stateRoot": _h("state", number),
        "transactionsRoot": _h("txroot", number),
        "receiptsRoot": _h("receipts", number),
        "logsBloom": "0x" + "".join(_h("bloom", number * 8 + i)[2:] for i in range(8)),
        "difficulty": "0x0",
        "number": hex(number),
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x1a1f8",
        "timestamp": hex(1_760_000_000 + number),
        "extraData": "0x",
        "mixHash": _h("mix", number),
        "nonce": "0x0000000000000000",
        "baseFeePerGas": "0x3b9aca00",
        "withdrawalsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
        "blobGasUsed": "0x0",
        "excessBlobGas": "0x0",
        "parentBeaconBlockRoot": "0x" + "00" * 32,
        "requestsHash": "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "totalDifficulty": "0x0",
        "size": "0x4f3",
        "uncles": [],
        "transactions": [_h("tx", number)],
        "withdrawals": [],
    }


class Peer:
    def __init__(self, ws: WebSocketConnection, control: bool) -> None:
        self.ws = ws
        self.control = control
        self.subscriptions: dict[str, str] = {}  # id -> kind


class Node:
    def __init__(self) -> None:
        self.peers: set[Peer] = set()
        self.number = FIRST_HEAD - 1
        self.blocks: dict[int, dict[str, Any]] = {}
        self.requests = 0  # calls answered on client (not /control) connections
        self._ids = itertools.count(1)

    def answer(self, peer: Peer, call: dict[str, Any]) -> Any:
        method, params = call.get("method"), call.get("params") or []
        if method == "eth_chainId":
            return CHAIN_ID
        if method == "eth_subscribe":
            sub_id = f"0x{next(self._ids):032x}"
            peer.subscriptions[sub_id] = params[0] if params else "?"
            return sub_id
        if method == "eth_unsubscribe":
            return peer.subscriptions.pop(params[0] if params else "", None) is not None
        if method == "eth_getBlockByNumber":
            tag = params[0] if params else "latest"
            return self.blocks.get(self.number if tag == "latest" else int(tag, 16))
        if method == "bench_stats":
            clients = [p for p in self.peers if not p.control]
            return {
                "connections": len(clients),
                "subscriptions": sum(len(p.subscriptions) for p in clients),
                "requests": self.requests,
            }
        return INSTANT_RESULT

    async def emit_head(self) -> dict[str, Any]:
        self.number += 1
        head = make_head(self.number)
        self.blocks[self.number] = head
        text = _encode(head).decode()
        targets = [
            (peer, sub_id)
            for peer in list(self.peers)
            for sub_id, kind in peer.subscriptions.items()
            if kind == "newHeads"
        ]
        emitted_at = time.monotonic()
        arrived_at: float | None = None
        for peer, sub_id in targets:
            message = (
                '{"jsonrpc":"2.0","method":"eth_subscription","params":'
                f'{{"subscription":"{sub_id}","result":{text}}}}}'
            )
            with contextlib.suppress(ConnectionClosed):
                await peer.ws.send_message(message)
                if arrived_at is None:
                    arrived_at = time.monotonic()
        return {
            "number": self.number,
            "emitted_at": emitted_at,
            "arrived_at": arrived_at if arrived_at is not None else emitted_at,
            "subscribers": len(targets),
            "head_bytes": len(text),
            "head_fields": len(head),
        }

    async def handle(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        peer = Peer(ws, control=request.path.startswith("/control"))
        self.peers.add(peer)
        try:
            while True:
                message = await ws.get_message()
                await ws.send_message(await self._reply(peer, message))
        except ConnectionClosed:
            pass
        finally:
            self.peers.discard(peer)

    async def _reply(self, peer: Peer, message: str | bytes) -> str:
        try:
            body = _decode(message)
        except msgspec.DecodeError:
            return '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'
        calls = body if isinstance(body, list) else [body]
        answers = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            if call.get("method") == "bench_emitHead":
                result = await self.emit_head()
            else:
                self.requests += not peer.control
                result = self.answer(peer, call)
            answers.append({"jsonrpc": "2.0", "id": call.get("id"), "result": result})
        if not answers:
            return '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}'
        return _encode(answers if isinstance(body, list) else answers[0]).decode()


async def main(port: int) -> None:
    node = Node()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_websocket,
                node.handle,
                "127.0.0.1",
                port,
                None,
                message_queue_size=64,
                receive_buffer_size=65_536,
                max_message_size=16 * 2**20,
            )
        )
        print(f"ready {server.port}", flush=True)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
