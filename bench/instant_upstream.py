"""A tiny instant JSON-RPC upstream for benchmarks.

Hand-rolled HTTP/1.1 keep-alive on trio: it answers every POST with a fixed
``eth_blockNumber`` result, echoing the request's ``id`` so the gateway's id
check passes. It costs a few tens of microseconds per request, so the
benchmark measures the proxy, not the upstream.

Run: ``python -m bench.instant_upstream [PORT]`` (prints ``ready PORT``). It
listens on 127.0.0.1 only; port 0 (the default) lets the kernel pick one.
"""

from __future__ import annotations

import re
import sys
from functools import partial

import trio

_ID = re.compile(rb'"id"\s*:\s*("[^"]*"|-?\d+|null)')
_CL = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def _response(request_body: bytes) -> bytes:
    body = b'{"jsonrpc":"2.0","id":' + request_id(request_body) + b',"result":"0x121eac0"}'
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


async def read_request(stream: trio.SocketStream, buf: bytearray) -> bytes | None:
    """The next request's body on a keep-alive connection (``buf`` keeps what was read
    past it); None once the client closed."""
    end = buf.find(b"\r\n\r\n")
    while end < 0:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        buf += chunk
        end = buf.find(b"\r\n\r\n")
    m = _CL.search(bytes(buf[:end]))
    total = end + 4 + (int(m.group(1)) if m else 0)
    while len(buf) < total:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        buf += chunk
    body = bytes(buf[end + 4 : total])
    del buf[:total]
    return body


def request_id(request_body: bytes) -> bytes:
    """The request's ``id`` as JSON text, to echo."""
    m = _ID.search(request_body)
    return m.group(1) if m else b"null"


async def _serve_conn(stream: trio.SocketStream) -> None:
    buf = bytearray()
    try:
        while (body := await read_request(stream, buf)) is not None:
            await stream.send_all(_response(body))
    except trio.BrokenResourceError:
        return


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, _serve_conn, port, host="127.0.0.1")
        )
        real_port = listeners[0].socket.getsockname()[1]
        print(f"ready {real_port}", flush=True)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
