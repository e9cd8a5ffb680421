"""An instant JSON-RPC upstream whose ``eth_getLogs`` answer is about 5 MB.

Hand-rolled HTTP/1.1 keep-alive on trio, like :mod:`bench.instant_upstream`: every
``eth_getLogs`` is answered at once with the same pre-built result, a JSON array of
``--logs`` realistic log objects (address, three topics, 64 bytes of data, block and
transaction fields in a node's order; about 670 bytes each, 7,500 of them by default:
about 5 MB), with the request's ``id`` spliced in. Every other method gets
``"0x121eac0"`` (the gateway's probes and head polling).

Run: ``python -m bench.biglogs_upstream [--logs N]`` (prints ``ready PORT``; 127.0.0.1,
a kernel-chosen port).
"""

from __future__ import annotations

import argparse
import re
from functools import partial

import trio

from bench.instant_upstream import _CL, _ID

HEAD = 0x121EAC0
_HTTP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
_GETLOGS = re.compile(rb'"method"\s*:\s*"eth_getLogs"')


TOKEN = 0xC02AAA39B223FE8D0A0E5C4F27EAD9083C756CC2
TRANSFER = 0xDDF252AD1BE2C89B69C2B068FC378DAA952BA7F163C4A11628F55A4DF523B3EF


def log_entry(i: int) -> str:
    block = HEAD - 16 + i % 16
    topics = f'["0x{TRANSFER:064x}","0x{i:064x}","0x{i * 7919:064x}"]'
    return (
        f'{{"address":"0x{TOKEN + i % 7:040x}","topics":{topics},'
        f'"data":"0x{i * 104729:0128x}","blockNumber":"0x{block:x}",'
        f'"transactionHash":"0x{i * 15485863:064x}","transactionIndex":"0x{i % 200:x}",'
        f'"blockHash":"0x{block * 2654435761:064x}","logIndex":"0x{i:x}","removed":false}}'
    )


def logs_result(n: int) -> bytes:
    return ("[" + ",".join(log_entry(i) for i in range(n)) + "]").encode()


def response(request_body: bytes, big: bytes) -> bytes:
    m = _ID.search(request_body)
    rid = m.group(1) if m else b"null"
    result = big if _GETLOGS.search(request_body) else b'"0x121eac0"'
    body = b'{"jsonrpc":"2.0","id":' + rid + b',"result":' + result + b"}"
    return _HTTP % len(body) + body


async def _serve_conn(big: bytes, stream: trio.SocketStream) -> None:
    buf = bytearray()
    try:
        while True:
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buf += chunk
                end = buf.find(b"\r\n\r\n")
            m = _CL.search(bytes(buf[:end]))
            total = end + 4 + (int(m.group(1)) if m else 0)
            while len(buf) < total:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buf += chunk
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            await stream.send_all(response(body, big))
    except trio.BrokenResourceError:
        return


async def main(n: int) -> None:
    big = logs_result(n)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, partial(_serve_conn, big), 0, host="127.0.0.1")
        )
        print(f"ready {listeners[0].socket.getsockname()[1]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.biglogs_upstream")
    parser.add_argument("--logs", type=int, default=7_500)
    trio.run(main, parser.parse_args().logs)
