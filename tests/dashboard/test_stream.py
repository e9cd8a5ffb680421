"""``GET /dashboard/events``: Server-Sent Events, a snapshot at once and one per second;
a hang-up ends the stream and gives its slot back; a client that stops reading gets no
more snapshots built for it; streams are capped (503 beyond); a drain or the maximum
stream age ends them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from lasso.dashboard import Dashboard
from lasso.gateway import Gateway
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.support.asgi import asgi_request


def board(app: LassoASGI) -> Dashboard:
    dashboard = app.fallback.extensions["lasso.dashboard"]  # type: ignore[attr-defined]
    assert isinstance(dashboard, Dashboard)
    return dashboard


def frames(body: bytes) -> list[dict[str, Any]]:
    """The snapshots in an SSE body (after the ``retry:`` hint)."""
    head, *messages = body.split(b"\n\n")
    assert head == b"retry: 2000"
    snapshots = []
    for message in messages:
        if not message:
            continue
        event, data = message.split(b"\n")
        assert event == b"event: snapshot" and data.startswith(b"data: ")
        snapshots.append(msgspec.json.decode(data[len(b"data: ") :]))
    return snapshots


async def test_a_snapshot_at_once_then_one_per_second_until_the_client_hangs_up(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    started = trio.current_time()
    response = await asgi_request(app, "GET", "/dashboard/events", hang_up_after_s=3.5)
    assert trio.current_time() - started == pytest.approx(3.5)
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-store"
    snapshots = frames(response.body)
    assert len(snapshots) == 4  # at 0, 1, 2 and 3 s
    assert [s["chains"][0]["key"] for s in snapshots] == ["testnet"] * 4
    assert snapshots[0]["streams"]["open"] == 1
    streams = board(app).streams
    assert (streams.open, streams.served, streams.sent_bytes) == (0, 1, len(response.body))


async def test_streams_are_capped_and_the_slot_comes_back(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    streams = board(app).streams
    streams.limit = 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: asgi_request(app, "GET", "/dashboard/events", hang_up_after_s=5))
        await trio.sleep(1)
        assert streams.open == 1
        refused = await asgi_request(app, "GET", "/dashboard/events")
        assert refused.status == 503 and refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["code"] == -32005
    assert streams.open == 0
    again = await asgi_request(app, "GET", "/dashboard/events", hang_up_after_s=0.5)
    assert again.status == 200 and len(frames(again.body)) == 1


async def test_a_client_that_stops_reading_gets_nothing_more_built(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    """The body is pulled: while a send is stuck (a full socket), no snapshot waits in a
    queue behind it; Lasso's server aborts such a connection at its send deadline."""
    streams = board(app).streams
    sent: list[bytes] = []
    stuck = trio.Event()

    async def receive() -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            sent.append(message["body"])
            stuck.set()
            await trio.sleep_forever()  # the client reads no more

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/dashboard/events",
        "raw_path": b"/dashboard/events",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4000),
        "extensions": {},
        "state": {},
    }
    with trio.move_on_after(60):
        await app(scope, receive, send)
    assert stuck.is_set()
    assert len(sent) == 1 and streams.sent_bytes == len(sent[0])
    assert streams.snapshots.builds == 1  # nothing built for it in 60 s
    assert streams.open == 0  # cancelled: the slot is back


async def test_a_drain_ends_every_stream_at_once(
    gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    draining = trio.Event()
    started = trio.current_time()
    app = LassoASGI(gateway, create_app(gateway, draining=draining))
    done: list[float] = []

    async def watch() -> None:
        response = await asgi_request(app, "GET", "/dashboard/events")  # never hangs up
        done.append(trio.current_time() - started)
        assert len(frames(response.body)) == 3

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        nursery.start_soon(watch)
        await trio.sleep(2.25)
        draining.set()
    assert done == [pytest.approx(2.25)] * 2
    refused = await asgi_request(app, "GET", "/dashboard/events")
    assert refused.status == 503


async def test_a_stream_ends_by_itself_at_its_maximum_age(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    board(app).streams.max_stream_s = 3.0
    started = trio.current_time()
    response = await asgi_request(app, "GET", "/dashboard/events")  # never hangs up
    assert len(frames(response.body)) == 3  # at 0, 1 and 2 s; the browser reconnects
    assert trio.current_time() - started == pytest.approx(3.0)
