"""Dialling an upstream WebSocket over a real loopback socket.

A peer that accepts and then resets (a dead node behind a live port, as a cut
``TcpRelay`` does) or closes before answering the upgrade must fail the dial at
once. trio-websocket's reader task ends on such a reset without waking the
handshake wait, so before the fix the dial hung until ``connect_timeout_ms``.
"""

from __future__ import annotations

import pytest
import trio

from lasso.chaos.tcpcut import open_tcp_relay
from lasso.upstream.ws.dial import dial

pytestmark = pytest.mark.slow


async def _closing_listener(
    nursery: trio.Nursery, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """A port that accepts, reads the upgrade request and closes without a reply (EOF)."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)

    listeners = await nursery.start(trio.serve_tcp, handle, 0)
    task_status.started(listeners[0].socket.getsockname()[1])


async def test_a_reset_during_the_handshake_fails_the_dial_at_once() -> None:
    async with open_tcp_relay(1) as relay:  # the target does not matter: every connection is cut
        relay.cut()
        for _ in range(5):
            started = trio.current_time()
            with trio.fail_after(1):
                failure = await _dial_failure(relay.port)
            assert trio.current_time() - started < 0.5
            assert "WebSocket handshake" in str(failure)


async def test_an_eof_during_the_handshake_fails_the_dial_at_once(nursery: trio.Nursery) -> None:
    port = await nursery.start(_closing_listener, nursery)
    with trio.fail_after(1):
        failure = await _dial_failure(port)
    assert "WebSocket handshake (EOF)" in str(failure)


async def _dial_failure(port: int) -> OSError:
    """Dial ``port``; the dial must fail with an ``OSError``, which is returned."""
    async with trio.open_nursery() as nursery:
        try:
            await dial(nursery, f"ws://127.0.0.1:{port}/", [], 1 << 20)
        except OSError as exc:
            nursery.cancel_scope.cancel()
            return exc
    raise AssertionError("the dial succeeded")
