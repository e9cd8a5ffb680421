"""The front door's own limits, in-process: body budget, body deadline, last resort, draining."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio
import trio.testing

from lasso.errors import ServerBusy
from lasso.web.asgi import LassoASGI
from lasso.web.budget import SMALL_BODY_BYTES, BodyBudget
from tests.support.asgi import asgi_request, open_asgi_websocket


def rpc(method: str, rid: object = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": []}).encode()


def test_the_budget_refuses_past_its_limit_and_gives_back_on_exit() -> None:
    budget = BodyBudget(1000)
    with budget.hold() as first:
        first.take(600)
        with budget.hold() as second, pytest.raises(ServerBusy):
            second.take(401)
        assert budget.in_use == 600
    assert budget.in_use == 0
    assert budget.statistics().refused == 1
    assert budget.statistics().peak == 600


def test_large_bodies_leave_headroom_for_small_ones() -> None:
    budget = BodyBudget(8 * SMALL_BODY_BYTES)
    with budget.hold() as large, budget.hold() as small:
        large.take(SMALL_BODY_BYTES)
        large.take(5 * SMALL_BODY_BYTES)
        with pytest.raises(ServerBusy):  # 7/8 is the most large bodies may fill
            large.take(SMALL_BODY_BYTES + 1)
        small.take(SMALL_BODY_BYTES)  # a small body still fits


async def test_a_body_over_the_global_budget_gets_503_with_retry_after(app: LassoASGI) -> None:
    app.bodies = BodyBudget(10)
    response = await asgi_request(app, "POST", "/rpc/testnet", rpc("eth_blockNumber"))
    assert response.status == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32005, "message": "Server busy: too many request bytes in flight"},
    }
    assert app.bodies.in_use == 0


async def test_a_slow_body_gets_408_after_body_timeout(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b'{"jsonrpc"', "more_body": True}
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/rpc/testnet",
        "headers": [],
        "query_string": b"",
    }
    start = trio.current_time()
    await app(scope, receive, send)
    assert trio.current_time() - start == app.gateway.settings.server.body_timeout_ms / 1000
    assert sent[1]["status"] == 408
    assert json.loads(sent[2]["body"])["error"] == {
        "code": -32600,
        "message": "Invalid Request: request body not received within 30000 ms",
    }
    assert app.bodies.in_use == 0


async def test_a_bug_is_one_log_line_and_a_jsonrpc_error(
    app: LassoASGI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(app.gateway, "answer_parsed", broken)
    response = await asgi_request(app, "POST", "/rpc/testnet", rpc("eth_blockNumber"))
    assert response.status == 500
    assert response.json()["error"] == {"code": -32603, "message": "Internal error"}
    records = [r for r in caplog.records if r.name.startswith("lasso")]
    assert [r.getMessage() for r in records] == [
        "internal error on /rpc/testnet: RecursionError: maximum recursion depth exceeded"
    ]
    assert records[0].exc_info is None


async def test_a_bug_before_the_answer_still_gets_json_not_a_traceback(
    app: LassoASGI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr("lasso.web.asgi.resolve_route", broken)
    response = await asgi_request(app, "POST", "/rpc/testnet", rpc("eth_blockNumber"))
    assert response.status == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == -32603
    assert all(r.exc_info is None for r in caplog.records)


async def test_the_traceback_is_kept_for_debug_logging(
    app: LassoASGI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lasso.web")

    async def broken(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(app.gateway, "answer_parsed", broken)
    await asgi_request(app, "POST", "/rpc/testnet", rpc("eth_blockNumber"))
    assert [r.exc_info is not None for r in caplog.records if r.name == "lasso.web"] == [True]


async def test_a_bug_reading_a_ws_frame_answers_that_frame_and_keeps_the_socket(
    app: LassoASGI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lasso.web.ws import ClientSocket

    real = ClientSocket._accept_frame

    async def flaky(self: ClientSocket, frame: bytes, nursery: trio.Nursery) -> None:
        if b"boom" in frame:
            raise RecursionError("deep")
        await real(self, frame, nursery)

    monkeypatch.setattr(ClientSocket, "_accept_frame", flaky)
    async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
        with trio.fail_after(5):
            await ws.send_text('{"boom": 1}')
            assert (await ws.receive_json())["error"] == {
                "code": -32603,
                "message": "Internal error",
            }
            await ws.send_text(rpc("eth_blockNumber", rid=2).decode())
            assert (await ws.receive_json()) == {"jsonrpc": "2.0", "id": 2, "result": "0x64"}
    assert all(r.exc_info is None for r in caplog.records)


async def test_draining_finishes_frames_in_flight_then_closes_1001(app: LassoASGI) -> None:
    draining = trio.Event()
    app.draining = draining
    async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
        with trio.fail_after(5):
            await ws.send_text(rpc("eth_blockNumber", rid=1).decode())
            assert (await ws.receive_json())["result"] == "0x64"
            draining.set()
            with pytest.raises(EOFError, match="closed with 1001: server shutting down"):
                await ws.receive_text()
