"""Request ids and the access log through Lasso's real front end (hypercorn on loopback).

Lasso serves on port 0 in front of a loopback JSON-RPC node
(``tests.support.auth_node``); requests are raw bytes on a socket, so a hostile
``X-Request-Id`` reaches the server exactly as sent. Lasso's own log handler
(``lasso.logsetup``) writes to a buffer the tests read; a reload ("SIGHUP")
switches ``[logging]`` live.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest
import trio
from trio_websocket import open_websocket_url

from lasso import logsetup
from lasso.config import load_settings
from lasso.reload import ReloadState
from tests.support.auth_node import AuthNode, open_auth_node
from tests.support.front import serve_reloadable, sighup_applied
from tests.support.hostile import HttpResponse, read_http_response

pytestmark = pytest.mark.slow

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
BATCH = b"[%b,%b]" % (BODY, BODY.replace(b'"id":1', b'"id":2'))


def config_text(node: AuthNode, logging_table: str) -> str:
    return f"""
[logging]
{logging_table}

[chains.devnet]
chain_id = 31337
head_poll_ms = 0
providers = [ {{ id = "n0", url = "http://127.0.0.1:{node.http_port}/", api_key = "k" }} ]
"""


class Front:
    def __init__(
        self, port: int, path: Path, node: AuthNode, state: ReloadState, send: object
    ) -> None:
        self.port, self.path, self.node, self.state = port, path, node, state
        self._send = send

    async def reload(self, logging_table: str) -> None:
        self.path.write_text(config_text(self.node, logging_table))
        await sighup_applied(self.state, self._send)  # type: ignore[arg-type]


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    logsetup.setup(None, stream=buffer, env={}, force=True)
    try:
        yield buffer
    finally:
        logsetup.teardown()
        root.setLevel(level)


@asynccontextmanager
async def open_front(tmp_path: Path, logging_table: str) -> AsyncIterator[Front]:
    async with open_auth_node("Bearer k") as node:
        path = tmp_path / "lasso.toml"
        path.write_text(config_text(node, logging_table))
        settings = load_settings(path, env={})
        logsetup.apply(settings.logging.format, settings.logging.level)  # as the CLI does
        async with serve_reloadable(path, settings) as front:
            yield Front(front.port, path, node, front.state, front.send)


async def post_raw(port: int, header_lines: bytes, body: bytes = BODY) -> HttpResponse:
    """One POST /rpc/devnet with ``header_lines`` (each ending in CRLF) exactly as given."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        head = (
            b"POST /rpc/devnet HTTP/1.1\r\nHost: lasso\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%b\r\n" % (len(body), header_lines)
        )
        await stream.send_all(head + body)
        with trio.fail_after(10):
            return await read_http_response(stream)


def json_lines(output: io.StringIO, logger: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == logger]


async def test_a_request_id_is_echoed_and_names_the_access_log_lines(
    tmp_path: Path, output: io.StringIO
) -> None:
    async with open_front(tmp_path, 'format = "json"\naccess_log = true') as front:
        response = await post_raw(front.port, b"X-Request-Id: trace-abc.123_XYZ\r\n")
        assert response.status == 200
        assert response.headers["x-request-id"] == "trace-abc.123_XYZ"
        batch = await post_raw(front.port, b"X-Request-Id: batch-7\r\n", BATCH)
        assert len(json.loads(batch.body)) == 2
        assert batch.headers["x-request-id"] == "batch-7"
        meta = await post_raw(
            front.port, b"X-Request-Id: meta-1\r\nX-Lasso-Include-Meta: headers\r\n"
        )
        assert meta.headers["x-lasso-request-id"] == "meta-1"  # the routing metadata's id too
    access = json_lines(output, "lasso.access")
    assert [line["request_id"] for line in access] == [
        "trace-abc.123_XYZ",
        "batch-7",
        "batch-7",
        "meta-1",
    ]
    first = access[0]
    assert {k: first[k] for k in ("transport", "profile", "chain", "method", "result")} == {
        "transport": "http",
        "profile": "default",
        "chain": "devnet",
        "method": "eth_blockNumber",
        "result": "ok",
    }
    assert (first["provider"], first["upstream_transport"]) == ("n0", "http")
    assert isinstance(first["upstream_ms"], float) and isinstance(first["total_ms"], float)
    assert first["total_ms"] >= first["upstream_ms"]


@pytest.mark.parametrize(
    "header",
    [
        b"X-Request-Id: " + b"A" * 129 + b"\r\n",  # too long
        b"X-Request-Id: two words\r\n",  # a space
        b"X-Request-Id: caf\xc3\xa9\r\n",  # not ASCII (h11 lets obs-text through)
        b"X-Request-Id: x\tINFO lasso.events: fake\r\n",  # a tab, then a fake line
    ],
)
async def test_a_bad_request_id_is_replaced_never_echoed_or_logged(
    tmp_path: Path, output: io.StringIO, header: bytes
) -> None:
    async with open_front(tmp_path, "access_log = true") as front:
        response = await post_raw(front.port, header)
    assert response.status == 200
    sent = header.split(b": ", 1)[1].rstrip(b"\r\n").decode("latin-1")
    made = response.headers["x-request-id"]
    assert made != sent and made.count("-") == 1  # ours: prefix-counter
    text = output.getvalue()
    assert sent not in text
    (line,) = [line for line in text.splitlines() if " lasso.access " in line]
    assert f"lasso.access [{made}]: http default/devnet eth_blockNumber ok" in line


async def test_a_newline_in_the_header_cannot_inject_a_log_line(
    tmp_path: Path, output: io.StringIO
) -> None:
    injected = b"X-Request-Id: a\r\n2026-01-01 00:00:00,000 CRITICAL lasso.events: pwned\r\n"
    bare_lf = b"X-Request-Id: a\n2026-01-01 CRITICAL lasso.events: pwned\r\n"
    async with open_front(tmp_path, "access_log = true") as front:
        for header in (injected, bare_lf):
            response = await post_raw(front.port, header)
            # a header line that is no header: h11 refuses the request (hypercorn's bare
            # 400) before Lasso sees it; nothing of it is echoed
            assert response.status == 400
            assert "x-request-id" not in response.headers
        assert (await post_raw(front.port, b"X-Request-Id: a\r\n")).status == 200  # still up
    assert "pwned" not in output.getvalue()
    assert not any(line.startswith("2026-01-01") for line in output.getvalue().splitlines())


async def test_the_access_log_is_off_by_default_and_a_reload_turns_it_and_json_on(
    tmp_path: Path, output: io.StringIO
) -> None:
    async with open_front(tmp_path, "") as front:
        response = await post_raw(front.port, b"")
        assert response.status == 200
        assert "x-request-id" not in response.headers  # nothing needed an id: none made
        assert " lasso.access" not in output.getvalue()
        await front.reload('format = "json"\naccess_log = true')
        response = await post_raw(front.port, b"X-Request-Id: after-reload\r\n")
        await front.reload('format = "text"\naccess_log = false')
        await post_raw(front.port, b"X-Request-Id: off-again\r\n")
    lines = output.getvalue().splitlines()
    as_json = [msgspec.json.decode(line) for line in lines if line.startswith("{")]
    access = [line for line in as_json if line["logger"] == "lasso.access"]
    assert [line["request_id"] for line in access] == ["after-reload"]
    reloads = [line for line in as_json if line.get("event") == "reload"]
    assert reloads and reloads[0]["result"] == "applied"
    assert "off-again" not in output.getvalue()


async def test_access_log_off_installs_no_observer(tmp_path: Path) -> None:
    from lasso.accesslog import AccessLogSwitch
    from lasso.opsevents import OpsEvents

    events = OpsEvents()
    switch = AccessLogSwitch(events)
    switch.set(False)
    assert events.request_observers == []
    switch.set(True)
    switch.set(True)
    assert len(events.request_observers) == 1
    switch.set(False)
    assert events.request_observers == []


async def test_a_websockets_handshake_id_names_every_call_on_it(
    tmp_path: Path, output: io.StringIO
) -> None:
    async with open_front(tmp_path, 'format = "json"\naccess_log = true') as front:
        url = f"ws://127.0.0.1:{front.port}/ws/rpc/devnet"
        headers = [("X-Request-Id", "ws-conn-9")]
        async with open_websocket_url(url, extra_headers=headers) as ws:
            for _ in range(2):
                await ws.send_message(BODY.decode())
                assert json.loads(await ws.get_message())["id"] == 1
            assert dict(ws.handshake_headers)[b"x-request-id"] == b"ws-conn-9"
    access = json_lines(output, "lasso.access")
    assert [(line["request_id"], line["transport"]) for line in access] == [
        ("ws-conn-9", "ws"),
        ("ws-conn-9", "ws"),
    ]
