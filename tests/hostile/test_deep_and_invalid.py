"""Deeply nested JSON and invalid UTF-8 in ``method``: a JSON-RPC error, one log line at most.

Before the fix each such request got HTTP 500 -32603 with a full traceback
logged, and over WebSocket the socket was closed with 1011. The front end's
part (this branch): whatever the parser raises, the answer is JSON-RPC, the log
has no traceback and at most one line per request, and a WebSocket stays
open. The parser's part (branch ``rpc``: the depth limit and UTF-8 checks)
turns these into -32700 / -32600 with the client's id.
"""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import trio

from tests.hostile.conftest import Front
from tests.support.hostile import OP_BINARY, OP_CLOSE, open_raw_websocket, ws_frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def nested(depth: int, rid: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"eth_call","params":%s%s}' % (
        rid,
        b"[" * depth,
        b"]" * depth,
    )


HOSTILE = [
    nested(990, 1),
    nested(5_000, 2),
    b"[" * 3_000 + b"]" * 3_000,
    b'{"jsonrpc":"2.0","id":4,"method":"eth_\xff\xfe","params":[]}',
    b'[{"jsonrpc":"2.0","id":5,"method":"eth_\xc3\x28","params":[]}]',
]


async def hostile_over_http(front: Front, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{front.base}/rpc/devnet", content=body, headers={"content-type": "application/json"}
        )


async def test_no_traceback_no_html_no_1011(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    def ours() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.startswith(("lasso", "hypercorn"))]

    for body in HOSTILE:
        before = len(ours())
        response = await hostile_over_http(front, body)
        assert response.headers["content-type"] == "application/json"
        answer = response.json()
        answers = answer if isinstance(answer, list) else [answer]
        assert all(a["error"]["code"] in (-32700, -32600, -32603) for a in answers)
        records = ours()[before:]
        assert len(records) <= 1
        assert all(r.exc_info is None for r in records)

    ws = await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
    with trio.fail_after(10):
        for body in HOSTILE:
            # Binary frames: a text frame must be UTF-8, and wsproto closes one that is not (1007).
            await ws.send_all(ws_frame(body, opcode=OP_BINARY))
            opcode, payload = await ws.message()
            assert opcode != OP_CLOSE, payload
            answer = json.loads(payload)
            answers = answer if isinstance(answer, list) else [answer]
            assert all(a["error"]["code"] in (-32700, -32600, -32603) for a in answers)
        await ws.send_text(b'{"jsonrpc":"2.0","id":9,"method":"eth_chainId"}')
        assert json.loads((await ws.message())[1]) == {
            "jsonrpc": "2.0",
            "id": 9,
            "result": "0x7a69",
        }
    assert all(r.exc_info is None and r.levelno < logging.CRITICAL for r in ours())
    await ws.aclose()
    await front.check_canary()


async def test_parse_errors_with_the_clients_id(front: Front) -> None:
    expected = [(400, -32600, 1), (400, -32600, 2), (400, -32600, None)]
    for body, (status, code, rid) in zip(HOSTILE, expected, strict=False):
        response = await hostile_over_http(front, body)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert response.json()["id"] == rid
    for body in HOSTILE[3:]:
        response = await hostile_over_http(front, body)
        answer = response.json()
        answers = answer if isinstance(answer, list) else [answer]
        assert all(a["error"]["code"] in (-32700, -32600) for a in answers)
    await front.check_canary()
