"""The web3.py workload: the gateway driven the way an application drives it.

:func:`run_web3` runs web3.py's ``AsyncWeb3`` against the gateway for ``duration_s``, in its
own thread with its own asyncio loop (web3 is asyncio; the harness is trio):

- over HTTP (``AsyncHTTPProvider``, client ``web3-http``): ``eth_blockNumber``,
  ``get_block`` (latest and by number), ``get_balance``, ``eth_call`` of the chain data's
  emitter and reverter (the revert raises ``ContractLogicError``: a correct, expected
  answer), ``get_logs``, ``get_transaction_receipt``; **batches** (``w3.batch_requests()``,
  client ``web3-batch``); **filter polling** (client ``web3-filter``, :mod:`battle.web3streams`);
- over the WebSocket (``WebSocketProvider``, client ``web3-ws``): ``eth_subscribe``
  ``newHeads`` and unary calls on the same socket, reconnecting when the gateway drops it.

Unary calls arrive at ``rps`` (Poisson, seeded); each runs as its own task so a slow answer
never holds the next one back (at most ``MAX_INFLIGHT`` at once; an arrival beyond that is
skipped, not queued). With ``data`` None (public targets) only chain-agnostic calls are made.
Every call is a :class:`RequestEvent` (see :mod:`battle.web3calls` for outcomes and ids),
every ``eth_blockNumber`` answer a :class:`HeadObservation`, and the heads and filter
changes :class:`SubscriptionEvent`s. Calls still in flight when the run stops are not
recorded (they had neither an answer nor a hang yet).

HTTP calls ask for ``?include_meta=headers`` so the serving provider is known (failover
latency). web3's retry of failed HTTP calls is turned off: each recorded call is one
request, and a failure is seen, not hidden by a retry.

**Stopping.** The thread's loop watches a ``threading.Event``; the trio side sets it when
the duration is up or when it is cancelled, and the loop cancels its tasks and closes its
connections within ``STOP_GRACE_S``. The trio side drains the thread's events into the
recorder every ``DRAIN_S`` and once more at the end (a ``deque`` hands them over, so the
thread never calls into trio). Times are trio's clock: ``perf_counter() + offset``, the
offset taken in trio before the thread starts.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import trio
from web3 import AsyncWeb3

from battle.chaindata import ChainData
from battle.events import HeadObservation, Recorder
from battle.web3calls import RecordingHTTPProvider, http_session
from battle.web3record import Clock, Sink, timed, timed_batch
from battle.web3streams import Socket, int_of, run_filters, run_heads

MAX_INFLIGHT = 64
REQUEST_TIMEOUT_S = 10.0
STOP_GRACE_S = 0.5
DRAIN_S = 0.25
_WATCH_S = 0.05
_ZERO = "0x0000000000000000000000000000000000000000"


class Endpoint(Protocol):
    """The gateway as the workloads see it (``battle.workload.Endpoint`` fits)."""

    @property
    def http_url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...

    @property
    def scenario(self) -> str: ...


def with_meta(url: str) -> str:
    """``url`` asking Lasso for routing metadata in a response header."""
    parts = urlsplit(url)
    query = f"{parts.query}&include_meta=headers" if parts.query else "include_meta=headers"
    return urlunsplit(parts._replace(query=query))


async def run_web3(
    endpoint: Endpoint,
    recorder: Recorder,
    duration_s: float,
    rps: float,
    data: ChainData | None,
    seed: int,
) -> None:
    """Drive ``endpoint`` with web3.py for ``duration_s`` (see the module docstring)."""
    stop = threading.Event()
    sink = Sink(endpoint.scenario, Clock(trio.current_time() - time.perf_counter()))
    plan = _Plan(endpoint.http_url, endpoint.ws_url, duration_s, rps, data, seed)

    def drain() -> None:
        while sink.events:
            recorder.record(sink.events.popleft())

    async def stop_when_done() -> None:
        try:
            while True:
                await trio.sleep(DRAIN_S)
                drain()
        finally:
            stop.set()  # also when the trio side is cancelled

    failed: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_when_done)
            try:
                await trio.to_thread.run_sync(
                    _thread_main, plan, sink, stop, abandon_on_cancel=False
                )
            except Exception as exc:  # raised below, not wrapped in the nursery's group
                failed = exc
            nursery.cancel_scope.cancel()
    finally:
        drain()
    if failed is not None:
        raise failed


@dataclass(frozen=True)
class _Plan:
    http_url: str
    ws_url: str
    duration_s: float
    rps: float
    data: ChainData | None
    seed: int


def _thread_main(plan: _Plan, sink: Sink, stop: threading.Event) -> None:
    asyncio.run(_main(plan, sink, stop))


async def _main(plan: _Plan, sink: Sink, stop: threading.Event) -> None:
    provider = RecordingHTTPProvider(
        with_meta(plan.http_url),
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)},
        exception_retry_configuration=None,
    )
    await provider.cache_async_session(http_session())
    http = AsyncWeb3(provider)
    socket = Socket()
    calls = _Calls(http, socket, sink, plan.data, random.Random(plan.seed))
    deadline = time.perf_counter() + plan.duration_s
    tasks = [
        asyncio.create_task(run_heads(plan.ws_url, sink, socket, REQUEST_TIMEOUT_S)),
        asyncio.create_task(run_filters(http, sink, plan.data)),
        asyncio.create_task(calls.arrivals(plan.rps)),
    ]
    try:
        # The trio side sets a threading.Event, which asyncio cannot await: poll it.
        while not stop.is_set() and time.perf_counter() < deadline:
            await asyncio.sleep(_WATCH_S)
            if any(t.done() and not t.cancelled() and t.exception() for t in tasks):
                break  # a bug of ours: stop and raise it below
    finally:
        running = [*tasks, *calls.inflight]
        for task in running:
            task.cancel()
        await asyncio.wait(running, timeout=STOP_GRACE_S)
        await provider.disconnect()
    for task in tasks:
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            raise exc


class _Calls:
    """The unary calls: which one next (seeded), and on which transport."""

    def __init__(
        self,
        http: AsyncWeb3[RecordingHTTPProvider],
        socket: Socket,
        sink: Sink,
        data: ChainData | None,
        rng: random.Random,
    ) -> None:
        self.http, self.socket, self.sink, self.data, self.rng = http, socket, sink, data, rng
        self.inflight: set[asyncio.Task[None]] = set()
        self.head: int | None = None  # the highest head web3-http was told of
        kinds = _CHAIN_CALLS if data is not None else _AGNOSTIC_CALLS
        self.kinds = [k for k, _ in kinds]
        self.weights = [w for _, w in kinds]

    async def arrivals(self, rps: float) -> None:
        if rps <= 0:
            return
        while True:
            await asyncio.sleep(self.rng.expovariate(rps))
            if len(self.inflight) >= MAX_INFLIGHT:
                continue
            kind = self.rng.choices(self.kinds, self.weights)[0]
            task = asyncio.create_task(getattr(self, kind)())
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)

    # -- over HTTP --

    async def _http(
        self,
        method: str,
        call: Callable[[], Awaitable[Any]],
        *,
        expect_revert: bool = False,
        block: int | None = None,
    ) -> Any:
        return await timed(
            self.sink,
            "web3-http",
            "http",
            method,
            call,
            expect_revert=expect_revert,
            block=block,
        )

    async def block_number(self) -> None:
        number = await self._http("eth_blockNumber", lambda: self.http.eth.block_number)
        if number is not None:
            self._told("web3-http", number)

    def _told(self, client: str, number: int) -> None:
        self.sink.put(HeadObservation(client=client, number=number, at=self.sink.clock.now()))
        if client == "web3-http":
            self.head = number if self.head is None else max(self.head, number)

    async def latest_block(self) -> None:
        await self._http("eth_getBlockByNumber", lambda: self.http.eth.get_block("latest"))

    async def block_by_number(self) -> None:
        number = self._a_block()
        if number is None:
            return await self.block_number()
        await self._http(
            "eth_getBlockByNumber", lambda: self.http.eth.get_block(number), block=number
        )

    def _a_block(self) -> int | None:
        """The newest head web3-http knows (a read-your-head probe) or, with chain data, one
        of its blocks."""
        if self.data is not None and (self.head is None or self.rng.random() < 0.5):
            return self.rng.randrange(self.data.head + 1)
        if self.head is None:
            return None
        return max(0, self.head - self.rng.choice((0, 0, 1, 2)))

    async def balance(self) -> None:
        address = self.rng.choice(self.data.addresses) if self.data is not None else _ZERO
        checksummed = AsyncWeb3.to_checksum_address(address)
        await self._http("eth_getBalance", lambda: self.http.eth.get_balance(checksummed))

    async def chain_id(self) -> None:
        await self._http("eth_chainId", lambda: self.http.eth.chain_id)

    async def call_emitter(self) -> None:
        assert self.data is not None
        tx = {"to": AsyncWeb3.to_checksum_address(self.data.emitter), "data": "0x01"}
        await self._http("eth_call", lambda: self.http.eth.call(tx))  # type: ignore[arg-type]

    async def call_reverter(self) -> None:
        assert self.data is not None
        tx: dict[str, Any] = {"to": AsyncWeb3.to_checksum_address(self.data.reverter)}
        if self.rng.random() < 0.5:
            tx["data"] = "0x01"  # empty revert data; without calldata: Error("nope")
        await self._http(
            "eth_call",
            lambda: self.http.eth.call(tx),  # type: ignore[arg-type]
            expect_revert=True,
        )

    async def logs(self) -> None:
        assert self.data is not None
        params: Any = {
            "fromBlock": self.data.log_block,
            "toBlock": self.data.log_block,
            "address": AsyncWeb3.to_checksum_address(self.data.emitter),
        }
        await self._http("eth_getLogs", lambda: self.http.eth.get_logs(params))

    async def receipt(self) -> None:
        assert self.data is not None
        tx_hash: Any = self.rng.choice(self.data.tx_hashes)
        await self._http(
            "eth_getTransactionReceipt",
            lambda: self.http.eth.get_transaction_receipt(tx_hash),
        )

    async def batch(self) -> None:
        address = AsyncWeb3.to_checksum_address(
            self.data.funded[0] if self.data is not None else _ZERO
        )

        async def call() -> list[Any]:
            async with self.http.batch_requests() as batch:
                batch.add(self.http.eth.get_block_number())
                batch.add(self.http.eth.chain_id)
                batch.add(self.http.eth.get_block("latest"))
                batch.add(self.http.eth.get_balance(address))
                return list(await batch.async_execute())

        answers = await timed_batch(self.sink, "web3-batch", call)
        if answers:
            self._told("web3-batch", int_of(answers[0]))

    # -- over the WebSocket --

    async def ws_block_number(self) -> None:
        w3 = self.socket.w3
        if w3 is None:
            return  # reconnecting: run_heads records the reconnection's own calls
        number = await timed(
            self.sink, "web3-ws", "ws", "eth_blockNumber", lambda: w3.eth.block_number
        )
        if number is not None:
            self._told("web3-ws", number)

    async def ws_latest_block(self) -> None:
        w3 = self.socket.w3
        if w3 is not None:
            await timed(
                self.sink,
                "web3-ws",
                "ws",
                "eth_getBlockByNumber",
                lambda: w3.eth.get_block("latest"),
            )

    async def ws_chain_id(self) -> None:
        w3 = self.socket.w3
        if w3 is not None:
            await timed(self.sink, "web3-ws", "ws", "eth_chainId", lambda: w3.eth.chain_id)


_AGNOSTIC_CALLS: tuple[tuple[str, float], ...] = (
    ("block_number", 4),
    ("latest_block", 2),
    ("block_by_number", 2),
    ("balance", 1),
    ("chain_id", 1),
    ("batch", 1),
    ("ws_block_number", 2),
    ("ws_latest_block", 1),
    ("ws_chain_id", 1),
)

_CHAIN_CALLS: tuple[tuple[str, float], ...] = (
    *_AGNOSTIC_CALLS,
    ("call_emitter", 1),
    ("call_reverter", 1),
    ("logs", 1),
    ("receipt", 1),
)
