"""A scripted in-memory JSON-RPC node, for faults a real node cannot produce.

:class:`FakeNode` answers a handful of methods the way anvil does, and can be
told to misbehave: hang, answer 500 with an HTML page, 429 with Retry-After,
truncated JSON, the wrong id, drop the connection. :class:`FakeHttpTransport`
plugs it into a provider in place of the real HTTP transport, so scenario
tests run on trio's ``MockClock`` with no sockets. Delays are ``trio.sleep``,
so they cost virtual time only.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any

import msgspec
import trio

from lasso.chaos.faults import Fault
from lasso.core.nesting import nesting_exceeds
from lasso.errors import UpstreamNetworkError
from lasso.upstream.http import HttpResponse, HttpStatistics, PostTransport

_encode = msgspec.json.encode
_decode = msgspec.json.decode
#: anvil (serde_json) cannot read a body nested deeper than this: -32600 with a null id.
ANVIL_MAX_DEPTH = 128
_UNREADABLE = {"code": -32600, "message": "Invalid request"}


class FakeNode:
    """An in-memory node of one chain. Set ``fault`` for every call, or queue faults."""

    def __init__(self, *, chain_id: int = 31337, head: int = 100, delay_s: float = 0.0) -> None:
        self.chain_id = chain_id
        self.head = head
        self.delay_s = delay_s
        self.fault: Fault | None = None
        self.queued: deque[Fault | None] = deque()
        self.calls: list[str] = []
        self.retry_after_s = 7
        self.forks: list[int] = []  # fork points: blocks above one belong to a newer branch
        self.logs: dict[int, list[dict[str, Any]]] = {}  # block number -> its logs
        self.txs: dict[str, int] = {}  # transaction hash -> the block that includes it

    async def handle(self, body: bytes) -> HttpResponse:
        if nesting_exceeds(body, ANVIL_MAX_DEPTH):  # serde_json's recursion limit, as anvil
            self.calls.append("?")
            return _ok({"jsonrpc": "2.0", "id": None, "error": _UNREADABLE})
        request = _decode(body)
        self.calls.append(request.get("method", "?"))
        fault = self.queued.popleft() if self.queued else self.fault
        if self.delay_s:
            await trio.sleep(self.delay_s)
        if fault is not None:
            return await self._misbehave(fault, request)
        return _ok(self._answer(request))

    async def _misbehave(self, fault: Fault, request: dict[str, Any]) -> HttpResponse:
        rid = request.get("id")
        if fault is Fault.HANG:
            await trio.sleep_forever()
        if fault is Fault.RESET:
            raise UpstreamNetworkError("connection reset by peer")
        if fault is Fault.FORWARD_THEN_RESET:
            self._answer(request)  # the node acted; its answer is lost
            raise UpstreamNetworkError("connection reset by peer")
        if fault is Fault.REFUSED:
            raise UpstreamNetworkError("connection refused", never_sent=True)
        if fault is Fault.HTML_500:
            return HttpResponse(500, b"<html><body>500 Internal Server Error</body></html>", None)
        if fault is Fault.RATE_LIMITED_429:
            return HttpResponse(429, b"Too Many Requests", str(self.retry_after_s))
        if fault is Fault.TRUNCATED_JSON:
            return HttpResponse(200, _encode(self._answer(request))[:-7], None)
        if fault is Fault.WRONG_ID:
            return _ok({"jsonrpc": "2.0", "id": (rid or 0) + 1000, "result": "0x1"})
        if fault is Fault.REVERT:
            return _ok(_error(rid, 3, "execution reverted", "0x08c379a0"))
        return _ok(_error(rid, -32601, f"Method not found: {request.get('method')}"))

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, rid = request.get("method"), request.get("id")
        params = request.get("params") or []
        results: dict[str, Any] = {
            "eth_chainId": hex(self.chain_id),
            "net_version": str(self.chain_id),
            "eth_blockNumber": hex(self.head),
            "eth_gasPrice": "0x3b9aca00",
            "eth_getBalance": "0x56bc75e2d63100000",
            "eth_call": "0x",
            "web3_clientVersion": "fake/0.1",
        }
        if method in results:
            return {"jsonrpc": "2.0", "id": rid, "result": results[method]}
        if method == "eth_getBlockByNumber":
            try:
                return {"jsonrpc": "2.0", "id": rid, "result": self._block(params)}
            except ValueError:  # anvil's answer to a block number that is not hex
                return _error(rid, -32602, "invalid digit found in string")
        if method == "eth_getLogs":
            return {"jsonrpc": "2.0", "id": rid, "result": self._get_logs(params)}
        if method == "eth_getTransactionReceipt":
            return {"jsonrpc": "2.0", "id": rid, "result": self._receipt(str(params[0]))}
        if method == "eth_getBlockReceipts":
            number = int(params[0], 16)
            receipts = [self._receipt(h) for h, n in self.txs.items() if n == number]
            return {
                "jsonrpc": "2.0",
                "id": rid,
                "result": receipts if number <= self.head else None,
            }
        if method == "eth_sendRawTransaction":
            digest = hashlib.sha256(str(params).encode()).hexdigest()
            return {"jsonrpc": "2.0", "id": rid, "result": "0x" + digest}
        return _error(rid, -32601, f"Method not found: {method}")

    def _block(self, params: list[Any]) -> dict[str, Any] | None:
        tag = params[0] if params else "latest"
        number = self._tags().get(tag)
        if number is None:
            number = int(tag, 16)
            if number > self.head:
                return None
        return {
            "number": hex(number),
            "hash": self.block_hash(number),
            "parentHash": self.block_hash(number - 1),
            "timestamp": hex(1_700_000_000 + number),
            "transactions": [],
        }

    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        number = self.txs.get(tx_hash)
        if number is None or number > self.head:
            return None  # unknown, or in a block this node has not reached
        return {"transactionHash": tx_hash, "blockNumber": hex(number), "status": "0x1"}

    def add_log(self, number: int, log: dict[str, Any]) -> None:
        """Make ``log`` part of block ``number`` (served by eth_getLogs)."""
        self.logs.setdefault(number, []).append(log)

    def _get_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        query = params[0] if params else {}
        low = int(query.get("fromBlock", hex(self.head)), 16)
        high = min(int(query.get("toBlock", hex(self.head)), 16), self.head)
        wanted = query.get("address")
        addresses = {wanted} if isinstance(wanted, str) else set(wanted or ())
        return [
            log
            for number in range(low, high + 1)
            for log in self.logs.get(number, [])
            if not addresses or log.get("address") in addresses
        ]

    def block_hash(self, number: int) -> str:
        """Blocks above a fork point belong to that fork's branch (see :meth:`reorg`)."""
        branch = sum(1 for fork in self.forks if number > fork)
        return _block_hash(number, branch)

    def reorg(self, depth: int) -> None:
        """Replace the last ``depth`` blocks with a new branch (new hashes, same numbers)."""
        self.forks.append(self.head - depth)

    def _tags(self) -> dict[str, int]:
        """Block tags as anvil resolves them: safe 32 and finalized 64 blocks back."""
        head = self.head
        return {
            "earliest": 0,
            "finalized": max(0, head - 64),
            "safe": max(0, head - 32),
            "latest": head,
            "pending": head + 1,
        }


def _block_hash(number: int, branch: int = 0) -> str:
    if number < 0:
        return "0x" + "0" * 64  # the genesis block's parent
    salt = b"" if branch == 0 else b"/branch%d" % branch
    return "0x" + hashlib.sha256(b"block%d%b" % (number, salt)).hexdigest()


def _ok(payload: dict[str, Any]) -> HttpResponse:
    return HttpResponse(200, _encode(payload), None)


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": error}


class FakeHttpTransport:
    """Implements the provider's HTTP transport interface on a :class:`FakeNode`."""

    def __init__(self, node: FakeNode, provider_id: str = "") -> None:
        self.node = node
        self.provider_id = provider_id
        self._requests = 0

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        self._requests += 1
        try:
            return await self.node.handle(body)
        except UpstreamNetworkError as exc:
            exc.provider_id = self.provider_id
            raise

    async def reap_idle(self) -> int:
        return 0

    async def aclose(self) -> None:
        return None

    def statistics(self) -> HttpStatistics:
        return HttpStatistics(self._requests, 0, 0, 0, 0)


class WrappedTransport:
    """A PostTransport around another that passes everything through; a subclass
    overrides :meth:`post` to watch or change the traffic."""

    def __init__(self, inner: PostTransport) -> None:
        self.inner = inner

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        return await self.inner.post(body, replay_safe=replay_safe)

    async def reap_idle(self) -> int:
        return await self.inner.reap_idle()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def statistics(self) -> HttpStatistics:
        return self.inner.statistics()
