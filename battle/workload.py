"""The raw workload: JSON-RPC requests at a :class:`~battle.scenario.Rate`, every answer an event.

:func:`run_requests` sends requests for ``duration_s`` on an arrival schedule (constant, or
Poisson seeded by the caller's ``rng``), each request its own task, split between HTTP and
one WebSocket connection (:mod:`battle.clients`). It stays bounded: at most ``max_inflight``
are in flight, and an arrival that finds them all busy (a hung gateway) is skipped and
counted, as is one the sender only reaches after ``duration_s`` (a box too busy to keep the
rate), so neither a hang nor a slow box makes the send window outlast ``duration_s``. A
request unanswered at ``deadline_s``, or whose connection failed before an answer, is a
``TIMEOUT`` event. After the send window the run waits for what is in flight (each bounded
by its deadline).

The method mix (:func:`choose_call`) is pure and seeded: with :class:`~battle.chaindata.ChainData`
it reads blocks, balances (also at an old block: history a pruned node cannot serve), calls the
emitter and the reverter (whose revert error is the node's own answer: ``error_expected``),
logs, receipts and transactions; without it (public or config targets) only chain-agnostic
reads. Each client remembers the highest head it was told (``eth_blockNumber``, or the
number of a ``latest`` block, each recorded as a :class:`~battle.events.HeadObservation`) and
reads that very block back: the read-your-head check (``block`` and ``empty_result``).

Client names are ``<client>-http-1`` and ``<client>-ws-1`` (``raw-http-1``, ``raw-ws-1``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import trio

from battle.answers import Answer, classify, hex_number, is_empty
from battle.chaindata import ChainData
from battle.clients import Endpoint, Reply, open_http, open_ws
from battle.events import HeadObservation, JsonId, Outcome, Recorder, RequestEvent
from battle.scenario import Arrival, Rate
from battle.subscribers import make_log_traffic, run_subscribers

__all__ = [
    "Call",
    "Drive",
    "Endpoint",
    "WorkloadStats",
    "arrivals",
    "choose_call",
    "drive",
    "make_log_traffic",
    "run_requests",
    "run_subscribers",
    "to_event",
]

#: The revert error code nodes give for ``eth_call`` to a reverting contract.
REVERT_CODE = 3
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class Call:
    method: str
    params: list[Any]
    block: int | None = None  # a read of a block number the client was told exists
    expect_error: int | None = None  # the node's own answer is this JSON-RPC error code
    reports_head: bool = False  # the answer is the head: eth_blockNumber or a latest block


# --- the method mix (pure) --------------------------------------------------------------


def _latest_block(rng: random.Random, data: ChainData | None, head: int | None) -> Call:
    return Call("eth_getBlockByNumber", ["latest", False], reports_head=True)


def _head_block(rng: random.Random, data: ChainData | None, head: int | None) -> Call:
    if head is None:
        return _latest_block(rng, data, head)
    return Call("eth_getBlockByNumber", [hex(head), rng.random() < 0.5], block=head)


def _block_number(rng: random.Random, data: ChainData | None, head: int | None) -> Call:
    return Call("eth_blockNumber", [], reports_head=True)


def _chain_id(rng: random.Random, data: ChainData | None, head: int | None) -> Call:
    return Call("eth_chainId", [])


def _zero_balance(rng: random.Random, data: ChainData | None, head: int | None) -> Call:
    return Call("eth_getBalance", [ZERO_ADDRESS, "latest"])


def _known_block(rng: random.Random, data: ChainData, head: int | None) -> Call:
    number = rng.randrange(len(data.block_hashes))
    return Call("eth_getBlockByNumber", [hex(number), False], block=number)


def _balance(rng: random.Random, data: ChainData, head: int | None) -> Call:
    return Call("eth_getBalance", [rng.choice(data.funded), "latest"])


def _old_balance(rng: random.Random, data: ChainData, head: int | None) -> Call:
    return Call("eth_getBalance", [rng.choice(data.funded), "0x1"])  # history


def _emitter_call(rng: random.Random, data: ChainData, head: int | None) -> Call:
    return Call("eth_call", [{"to": data.emitter, "data": "0x01"}, "latest"])


def _reverter_call(rng: random.Random, data: ChainData, head: int | None) -> Call:
    return Call("eth_call", [{"to": data.reverter}, "latest"], expect_error=REVERT_CODE)


def _recent_logs(rng: random.Random, data: ChainData, head: int | None) -> Call:
    span = {"fromBlock": "latest", "toBlock": "latest"}
    if head is not None:
        span = {"fromBlock": hex(max(0, head - 2)), "toBlock": hex(head)}
    return Call("eth_getLogs", [{**span, "address": data.emitter}])


def _seeded_logs(rng: random.Random, data: ChainData, head: int | None) -> Call:
    block = hex(data.log_block)
    return Call("eth_getLogs", [{"fromBlock": block, "toBlock": block, "address": data.emitter}])


def _receipt(rng: random.Random, data: ChainData, head: int | None) -> Call:
    return Call("eth_getTransactionReceipt", [rng.choice(data.tx_hashes)])


def _transaction(rng: random.Random, data: ChainData, head: int | None) -> Call:
    return Call("eth_getTransactionByHash", [rng.choice(data.tx_hashes)])


def _code(rng: random.Random, data: ChainData, head: int | None) -> Call:
    return Call("eth_getCode", [rng.choice((data.emitter, data.reverter)), "latest"])


_Any = Callable[[random.Random, ChainData | None, int | None], Call]
_Chain = Callable[[random.Random, ChainData, int | None], Call]

#: (weight, call) for any chain: what a public provider can answer the same on every node.
AGNOSTIC: tuple[tuple[int, _Any], ...] = (
    (4, _block_number),
    (2, _latest_block),
    (3, _head_block),
    (1, _chain_id),
    (1, _zero_balance),
)
#: (weight, call) drawn from the harness's own chain data, on top of AGNOSTIC.
SEEDED: tuple[tuple[int, _Chain], ...] = (
    (1, _known_block),
    (1, _balance),
    (1, _old_balance),
    (1, _emitter_call),
    (1, _reverter_call),
    (1, _recent_logs),
    (1, _seeded_logs),
    (1, _receipt),
    (1, _transaction),
    (1, _code),
)


def choose_call(rng: random.Random, data: ChainData | None, head: int | None) -> Call:
    """One call of the mix; ``head`` is the highest head this client was told, if any."""
    if data is None:
        weights = [w for w, _ in AGNOSTIC]
        (make,) = rng.choices([m for _, m in AGNOSTIC], weights)
        return make(rng, data, head)
    options: list[tuple[int, _Chain]] = [*AGNOSTIC, *SEEDED]
    (chosen,) = rng.choices([m for _, m in options], [w for w, _ in options])
    return chosen(rng, data, head)


def arrivals(rate: Rate, duration_s: float, rng: random.Random) -> Iterator[float]:
    """Send times (seconds from the start) before ``duration_s``."""
    if rate.rps <= 0:
        return
    at, count = 0.0, 0
    while True:
        if rate.arrival is Arrival.POISSON:
            at += rng.expovariate(rate.rps)
        else:
            at = count / rate.rps  # no float drift: the k-th send is at k / rps
        if at >= duration_s:
            return
        yield at
        count += 1


def next_id(n: int, prefix: str) -> JsonId:
    """Varied ids, unique per run: mostly ints, every third a string, some beyond 2**32."""
    if n % 3 == 0:
        return f"{prefix}-{n}"
    if n % 7 == 0:
        return n + 2**40
    return n


def head_of(call: Call, answer: Answer) -> int | None:
    """The head number an answer told the client, if the call asks for the head."""
    if not call.reports_head or answer.outcome is not Outcome.RESULT:
        return None
    if call.method == "eth_blockNumber":
        return hex_number(answer.result)
    block = answer.result
    return hex_number(block.get("number")) if isinstance(block, dict) else None


def to_event(
    scenario: str,
    client: str,
    transport: str,
    call: Call,
    sent_id: JsonId,
    sent_at: float,
    reply: Reply | None,
) -> tuple[RequestEvent, int | None]:
    """The event recording one request, and the head it told the client (if any)."""
    if reply is None:
        timeout = RequestEvent(
            scenario, client, transport, call.method, sent_at, None, None, Outcome.TIMEOUT, sent_id
        )
        return timeout, None
    answer = classify(reply.status, reply.body)
    event = RequestEvent(
        scenario=scenario,
        client=client,
        transport=transport,
        method=call.method,
        sent_at=sent_at,
        answered_at=reply.answered_at,
        http_status=reply.status,
        outcome=answer.outcome,
        sent_id=sent_id,
        received_id=answer.received_id,
        error_code=answer.error_code,
        error_expected=call.expect_error is not None and answer.error_code == call.expect_error,
        provider=reply.provider,
        cache=reply.cache,
        block=call.block,
        empty_result=call.block is not None
        and answer.outcome is Outcome.RESULT
        and is_empty(answer.result),
    )
    return event, head_of(call, answer)


# --- the driver ---------------------------------------------------------------------


class _Transport(Protocol):
    async def send(self, body: bytes, sent_id: JsonId) -> Reply | None: ...


@dataclass
class WorkloadStats:
    sent: int = 0
    skipped: int = 0  # arrivals dropped: max_inflight were unanswered, or sent too late
    inflight: int = 0
    heads: dict[str, int] = field(default_factory=dict)  # client -> highest head told


_ENCODE = msgspec.json.Encoder()


@dataclass(frozen=True)
class Drive:
    """How :func:`drive` sends: the knobs of :func:`run_requests`."""

    scenario: str
    client: str = "raw"
    deadline_s: float = 10.0
    max_inflight: int = 256
    ws_share: float = 0.5


async def run_requests(
    endpoint: Endpoint,
    recorder: Recorder,
    rate: Rate,
    duration_s: float,
    data: ChainData | None,
    rng: random.Random,
    *,
    client: str = "raw",
    deadline_s: float = 10.0,
    max_inflight: int = 256,
    ws_share: float = 0.5,
) -> WorkloadStats:
    """Send the mix at ``rate`` for ``duration_s``; record every answer; return the counts."""
    how = Drive(endpoint.scenario, client, deadline_s, max_inflight, ws_share)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(open_http(endpoint.http_url, max_inflight))
        ws = await stack.enter_async_context(open_ws(endpoint.ws_url))
        return await drive(how, http, ws, recorder, rate, duration_s, data, rng)


async def drive(
    how: Drive,
    http: _Transport,
    ws: _Transport,
    recorder: Recorder,
    rate: Rate,
    duration_s: float,
    data: ChainData | None,
    rng: random.Random,
) -> WorkloadStats:
    """:func:`run_requests` over given transports (tests pass fakes on a MockClock)."""
    stats = WorkloadStats()
    names = {"http": f"{how.client}-http-1", "ws": f"{how.client}-ws-1"}

    async def one(transport: _Transport, kind: str, call: Call, sent_id: JsonId) -> None:
        name = names[kind]
        body = _ENCODE.encode(
            {"jsonrpc": "2.0", "id": sent_id, "method": call.method, "params": call.params}
        )
        sent_at = trio.current_time()
        reply: Reply | None = None
        try:
            with trio.move_on_after(how.deadline_s):
                reply = await transport.send(body, sent_id)
        finally:
            stats.inflight -= 1
        event, head = to_event(how.scenario, name, kind, call, sent_id, sent_at, reply)
        recorder.record(event)
        if head is not None and reply is not None:
            recorder.record(HeadObservation(name, head, reply.answered_at))
            stats.heads[name] = max(head, stats.heads.get(name, head))

    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        for offset in arrivals(rate, duration_s, rng):
            await trio.sleep_until(start + offset)
            if stats.inflight >= how.max_inflight or trio.current_time() >= start + duration_s:
                stats.skipped += 1
                continue
            kind = "ws" if rng.random() < how.ws_share else "http"
            call = choose_call(rng, data, stats.heads.get(names[kind]))
            stats.sent += 1
            stats.inflight += 1
            sent_id = next_id(stats.sent, how.client)
            nursery.start_soon(one, ws if kind == "ws" else http, kind, call, sent_id)
    return stats
