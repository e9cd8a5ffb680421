"""The client WebSocket endpoint, in-process: handshake, frames, limits, idle timeout."""

from __future__ import annotations

import json

import msgspec
import pytest
import trio
import trio.lowlevel
import trio.testing

from lasso.chaos.faults import Fault
from lasso.core.routes import parse_rpc_path
from lasso.web.asgi import LassoASGI
from lasso.web.ws import ClientSocket
from tests.conftest import FakeFleet
from tests.support.asgi import AsgiWebSocket, open_asgi_websocket


def rpc(method: str, params: object = (), rid: object = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)})


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/ws/rpc/nope", 400, "Unsupported chain: unknown chain 'nope'"),
        ("/ws/rpc/profile/nope/testnet", 404, "Profile 'nope' not found"),
        ("/ws/rpc/provider/zz/testnet", 400, "Provider 'zz' is not configured for chain 'testnet'"),
        ("/ws/rpc/a/b/c/d", 404, "No such route: /ws/rpc/a/b/c/d"),
    ],
)
async def test_unknown_targets_are_rejected_at_the_handshake(
    app: LassoASGI, path: str, status: int, message: str
) -> None:
    async with open_asgi_websocket(app, path) as ws:
        with trio.fail_after(5), pytest.raises(EOFError):
            await ws.receive_text()
    assert not ws.accepted.is_set()
    assert ws.rejection is not None
    assert ws.rejection["status"] == status
    assert msgspec.json.decode(ws.rejection["body"])["error"] == {
        "code": -32602,
        "message": message,
    }


async def test_unary_requests_and_batches(app: LassoASGI) -> None:
    async with open_asgi_websocket(app, "/ws/rpc/priority/testnet") as ws:
        with trio.fail_after(5):
            await ws.send_text(rpc("eth_blockNumber", rid="a"))
            assert await ws.receive_json() == {"jsonrpc": "2.0", "id": "a", "result": "0x64"}
            await ws.send_text("[" + rpc("eth_chainId", rid=1) + "," + rpc("eth_sign", rid=2) + "]")
            answers = await ws.receive_json()
            assert [a["id"] for a in answers] == [1, 2]
            assert answers[0]["result"] == "0x7a69"
            assert answers[1]["error"]["code"] == -32601
            await ws.send_bytes(rpc("eth_blockNumber", rid=3).encode())
            assert (await ws.receive_json())["id"] == 3


async def test_bad_frames_get_errors_and_the_socket_stays_open(app: LassoASGI) -> None:
    async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
        with trio.fail_after(5):
            await ws.send_text("{not json")
            assert (await ws.receive_json())["error"]["code"] == -32700
            await ws.send_text('{"jsonrpc":"2.0","id":1,"method":7}')
            assert (await ws.receive_json())["error"]["code"] == -32600
            await ws.send_text("[]")
            assert (await ws.receive_json())["error"]["code"] == -32600
            await ws.send_text("x" * 9_000_000)
            error = (await ws.receive_json())["error"]
            assert error == {"code": -32600, "message": "Invalid Request: frame over 8000000 bytes"}
            await ws.send_text(rpc("eth_blockNumber", rid=9))
            assert (await ws.receive_json())["result"] == "0x64"


async def fill_in_flight(ws: AsgiWebSocket, fleet: FakeFleet) -> None:
    """32 requests (the limit) hanging upstream."""
    for node in fleet.nodes.values():
        node.fault = Fault.HANG
    for i in range(32):
        await ws.send_text(
            rpc("eth_getBalance", ["0x0000000000000000000000000000000000000001"], rid=i)
        )
    await trio.testing.wait_all_tasks_blocked()


async def test_in_flight_limit_answers_local_capacity_with_the_ids(
    app: LassoASGI, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
        await fill_in_flight(ws, fleet)
        await ws.send_text(rpc("eth_blockNumber", rid="over"))
        answer = await ws.receive_json()
        assert answer == {
            "jsonrpc": "2.0",
            "id": "over",
            "error": {"code": -32008, "message": "Local request capacity unavailable"},
        }


async def test_notifications_without_id_get_no_answer(app: LassoASGI, fleet: FakeFleet) -> None:
    async with open_asgi_websocket(app, "/ws/rpc/priority/testnet") as ws:
        with trio.fail_after(5):
            await ws.send_text('{"jsonrpc":"2.0","method":"eth_blockNumber"}')
            await ws.send_text(rpc("eth_chainId", rid=2))
            assert (await ws.receive_json())["id"] == 2
    assert fleet.nodes["p1"].calls == ["eth_blockNumber"]


async def test_an_idle_socket_is_closed(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
        start = trio.current_time()
        with pytest.raises(EOFError):
            await ws.receive_text()
        assert ws.close_code == 1001
        assert trio.current_time() - start == pytest.approx(600.0)


async def test_a_binary_frame_that_is_not_utf8_is_a_parse_error(app: LassoASGI) -> None:
    async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
        with trio.fail_after(5):
            await ws.send_bytes(b'{"jsonrpc":"2.0","id":"\xff","method":"eth_chainId","params":[]}')
            error = (await ws.receive_json())["error"]
            assert error == {"code": -32700, "message": "Parse error: not valid UTF-8"}
            await ws.send_text(rpc("eth_chainId", rid=2))
            assert (await ws.receive_json())["result"] == "0x7a69"


async def test_notifications_over_the_in_flight_limit_get_no_answer(
    app: LassoASGI, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
        await fill_in_flight(ws, fleet)
        await ws.send_text('{"jsonrpc":"2.0","method":"eth_blockNumber"}')  # a notification
        await ws.send_text(rpc("eth_blockNumber", rid="over"))
        answer = await ws.receive_json()
        assert answer["id"] == "over"  # nothing was sent for the notification before it


def client_socket_on_testnet(app: LassoASGI) -> ClientSocket:
    """A client socket on /ws/rpc/testnet, driven by the test's own receive and send."""
    return ClientSocket(
        app.gateway,
        app.gateway.resolve(parse_rpc_path("/rpc/testnet"), "/rpc/testnet"),
        app.gateway.settings.server,
    )


async def test_a_slow_consumer_is_closed_promptly(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    socket = client_socket_on_testnet(app)
    blocked = trio.Event()
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)
        await blocked.wait()  # the client reads nothing

    async def receive() -> dict[str, object]:
        await trio.sleep_forever()
        raise AssertionError

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(socket.serve, receive, send)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(app.gateway.settings.server.ws_send_queue + 5):
            socket.notify(b'{"n":%d}' % i)
    assert trio.current_time() - start <= 2.01  # the close frame waits at most 2 s
    assert socket._closing == (1013, "client too slow for its subscriptions: 4096 messages unsent")


async def test_a_client_flooding_frames_is_told_so_not_called_a_slow_subscriber(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    socket = client_socket_on_testnet(app)
    blocked = trio.Event()

    async def send(message: dict[str, object]) -> None:
        await blocked.wait()  # the client reads nothing

    frames = 0

    async def receive() -> dict[str, object]:
        nonlocal frames
        frames += 1
        await trio.lowlevel.checkpoint()
        return {"type": "websocket.receive", "text": rpc("eth_blockNumber", rid=frames)}

    with trio.fail_after(60):
        await socket.serve(receive, send)
    assert socket._closing == (1013, "client sends faster than it reads: 4096 messages unsent")
