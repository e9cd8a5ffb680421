"""An instant HTTP upstream whose ``eth_getLogs`` answer is a fixed ~5 MB result.

Like :mod:`bench.instant_upstream` (hand-rolled HTTP/1.1 keep-alive on trio, the
request's ``id`` echoed), but ``eth_getLogs`` gets :func:`logs_result`: realistic
log objects (address, three topics, 64 bytes of data, block and transaction
fields, as a node sends them, compact), about 5 MB in all. Every other method gets
``eth_blockNumber``'s answer. The answer bytes are built once; per request only
the id and the head are spliced in, so the upstream costs little next to what it
measures: how much a gateway adds on the way from the upstream's bytes to the
client's.

    python -m bench.bigresult_upstream [--port 0] [--bytes 5000000]   (prints ``ready PORT``)

For a harness in-process: ``await nursery.start(serve, 0)`` returns the port, and
:func:`logs_result` the exact result bytes a client must receive.
"""

from __future__ import annotations

import argparse
import random
from functools import partial

import trio

from bench.instant_upstream import read_request, request_id

__all__ = ["DEFAULT_BYTES", "logs_result", "response_parts", "serve"]

DEFAULT_BYTES = 5_000_000
_HEAD_NUMBER = b'"0x121eac0"'


def _hex(rng: random.Random, nbytes: int) -> str:
    return "0x" + rng.randbytes(nbytes).hex()


def logs_result(size: int = DEFAULT_BYTES, *, seed: int = 1) -> bytes:
    """A JSON array of log objects, compact as nodes write it, of about ``size`` bytes."""
    rng = random.Random(seed)
    logs: list[bytes] = []
    total = 2
    block = 19_000_000
    index = 0
    while total < size:
        if index % 40 == 0:
            block += 1
            block_hash = _hex(rng, 32)
        topics = ",".join(f'"{_hex(rng, 32)}"' for _ in range(3))
        log = (
            f'{{"address":"{_hex(rng, 20)}","topics":[{topics}],"data":"{_hex(rng, 64)}",'
            f'"blockNumber":"{hex(block)}","transactionHash":"{_hex(rng, 32)}",'
            f'"transactionIndex":"{hex(index % 200)}","blockHash":"{block_hash}",'
            f'"logIndex":"{hex(index % 40)}","removed":false}}'
        ).encode()
        logs.append(log)
        total += len(log) + 1
        index += 1
    return b"[" + b",".join(logs) + b"]"


def response_parts(request_body: bytes, logs: bytes) -> tuple[bytes, bytes, bytes]:
    """The HTTP response to one request in three parts (the big middle one is ``logs``
    itself, never copied): ``logs`` for eth_getLogs, else a block number."""
    rid = request_id(request_body)
    result = logs if b'"eth_getLogs"' in request_body else _HEAD_NUMBER
    prefix = b'{"jsonrpc":"2.0","id":' + rid + b',"result":'
    length = len(prefix) + len(result) + 1
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return (head % length) + prefix, result, b"}"


async def _serve_conn(logs: bytes, stream: trio.SocketStream) -> None:
    buf = bytearray()
    try:
        while (body := await read_request(stream, buf)) is not None:
            for part in response_parts(body, logs):
                await stream.send_all(part)
    except trio.BrokenResourceError:
        return


async def serve(
    port: int = 0,
    logs: bytes | None = None,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on 127.0.0.1:``port`` (0: the kernel picks) until cancelled; started with
    the port it listens on. ``logs``: the eth_getLogs result (default :func:`logs_result`)."""
    handler = partial(_serve_conn, logs_result() if logs is None else logs)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, port, host="127.0.0.1"))
        task_status.started(listeners[0].socket.getsockname()[1])


async def _main(port: int, size: int) -> None:
    async with trio.open_nursery() as nursery:
        real_port = await nursery.start(partial(serve, port, logs_result(size)))
        print(f"ready {real_port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bigresult_upstream", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bytes", type=int, default=DEFAULT_BYTES, help="result size")
    args = parser.parse_args()
    trio.run(_main, args.port, args.bytes)


if __name__ == "__main__":
    main()
