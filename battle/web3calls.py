"""web3.py calls as battle events: what was sent, what came back, and what it means.

The web3 workload (:mod:`battle.web3load`) drives the gateway through web3.py's own stack, so
what it records is what an application would see. Two small provider subclasses note each
request web3 puts on the wire (a :class:`Wire`: method, id, when) and its decoded answer into
the calling task's :class:`Exchange` (a context variable), and over HTTP an aiohttp trace
notes the status and Lasso's routing metadata; everything else is web3's unchanged
behaviour. One web3 call can be several requests (``eth_call`` asks ``eth_chainId`` before
and after itself): each is a request of its own.

**Ids.** ``sent_id`` is the id web3 put on the wire (from ``form_request``); ``received_id``
is the id in the decoded answer. Over HTTP web3 never compares them (the answer is taken
whatever its id), so both are recorded as they were and a mismatch shows in the SLO. Over
the WebSocket web3 pairs answers to requests by id (an answer under another id is never
taken: the call times out), so the received id is the one web3 matched. In a batch web3
sorts the answers by id and pairs them positionally without comparing; each item records
the id it was sent under and the id of the answer web3 paired with it.

**Outcomes** (:func:`classify`): an answer is ``RESULT``; web3 raising ``BlockNotFound`` /
``TransactionNotFound`` is a ``null`` result (``RESULT`` with ``empty_result``);
``Web3RPCError`` and ``ContractLogicError`` are ``JSONRPC_ERROR`` with the code from the
answer (a revert of the chain data's reverter is expected: ``error_expected``). web3's
aiohttp session raises on any status >= 400 and discards the body, so a status >= 500 is
``HTTP_5XX`` and a 4xx is ``JSONRPC_ERROR`` without a code. A body that is not JSON, or JSON
that is not a JSON-RPC answer, is ``NON_JSON``. No answer at all is ``TIMEOUT`` (no
``answered_at``): web3's timeout, and a connection lost before the answer.
"""

from __future__ import annotations

import base64
import contextvars
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import msgspec
import websockets
from web3 import AsyncHTTPProvider, WebSocketProvider
from web3.exceptions import (
    BadResponseFormat,
    BlockNotFound,
    ContractLogicError,
    PersistentConnectionError,
    ProviderConnectionError,
    TaskNotRunning,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import RPCEndpoint, RPCRequest, RPCResponse

from battle.events import JsonId, Outcome

# py_ecc, which importing web3 imports (web3 -> eth_account -> py_ecc), raises the whole
# process's recursion limit to 100,000 as it loads. With that limit a deep recursion overflows
# the C stack (a crash) before it raises RecursionError, and code that relies on
# RecursionError changes behaviour (tomllib's nesting limit, in the config tests). Every
# battle module that uses web3 imports this one: put Python's default back.
_PY_ECC_RECURSION_LIMIT = 100_000
if sys.getrecursionlimit() == _PY_ECC_RECURSION_LIMIT:
    sys.setrecursionlimit(1000)

#: Errors that mean "no answer came": the connection was lost or never made.
NO_ANSWER: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    websockets.ConnectionClosed,
    websockets.WebSocketException,
    ProviderConnectionError,
    PersistentConnectionError,
    TaskNotRunning,
    OSError,
)


@dataclass
class Wire:
    """One JSON-RPC request web3 put on the wire (a batch is one per item) and its answer."""

    method: str
    sent_id: JsonId
    sent_at: float
    answer: Any = None  # the decoded answer: a dict, or a batch's list (on its last item)
    answered_at: float | None = None
    status: int | None = None
    meta: bytes | None = None  # the raw ``x-lasso-meta`` header

    def answer_dict(self) -> dict[str, Any] | None:
        return self.answer if isinstance(self.answer, dict) else None


@dataclass
class Exchange:
    """Every request one web3 call made, filled in by the providers below. One call can be
    several requests: web3's validation middleware asks ``eth_chainId`` before and after
    each ``eth_call``."""

    now: Callable[[], float] = time.perf_counter
    wires: list[Wire] = field(default_factory=list)

    def last(self) -> Wire | None:
        return self.wires[-1] if self.wires else None


EXCHANGE: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "web3_exchange", default=None
)


def _note_sent(request: RPCRequest) -> None:
    exchange = EXCHANGE.get()
    if exchange is not None:
        exchange.wires.append(Wire(str(request["method"]), request["id"], exchange.now()))


def _note_answer(answer: Any) -> None:
    exchange = EXCHANGE.get()
    wire = exchange.last() if exchange is not None else None
    if exchange is not None and wire is not None:
        wire.answer, wire.answered_at = answer, exchange.now()


class RecordingHTTPProvider(AsyncHTTPProvider):
    """web3's HTTP provider, noting ids and answers into the current :class:`Exchange`."""

    def form_request(self, method: RPCEndpoint, params: Any = None) -> RPCRequest:
        request = super().form_request(method, params)
        _note_sent(request)
        return request

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        answer = await super().make_request(method, params)
        _note_answer(answer)
        return answer

    async def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        answer = await super().make_batch_request(batch_requests)
        _note_answer(answer)
        return answer


class RecordingWebSocketProvider(WebSocketProvider):
    """web3's WebSocket provider, noting ids and answers into the current :class:`Exchange`."""

    def form_request(self, method: RPCEndpoint, params: Any = None) -> RPCRequest:
        request = super().form_request(method, params)
        _note_sent(request)
        return request

    async def recv_for_request(self, rpc_request: RPCRequest) -> RPCResponse:
        answer = await super().recv_for_request(rpc_request)
        _note_answer(answer)
        return answer


async def _on_request_end(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestEndParams,
) -> None:
    exchange = EXCHANGE.get()
    wire = exchange.last() if exchange is not None else None
    if wire is not None:
        wire.status = params.response.status
        header = params.response.headers.get("x-lasso-meta")
        wire.meta = header.encode() if header is not None else None


def http_session() -> aiohttp.ClientSession:
    """The session web3 would make itself (it raises for status, one connection per call),
    plus the trace that notes status and routing metadata."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    return aiohttp.ClientSession(
        raise_for_status=True,
        connector=aiohttp.TCPConnector(force_close=True, enable_cleanup_closed=True),
        trace_configs=[trace],
    )


def providers_of(meta: bytes | None) -> list[str | None]:
    """The serving provider per answer from an ``x-lasso-meta`` header (a batch has a list)."""
    if not meta:
        return []
    try:
        decoded = msgspec.json.decode(base64.urlsafe_b64decode(meta + b"=" * (-len(meta) % 4)))
    except (ValueError, msgspec.DecodeError):
        return []
    items = decoded if isinstance(decoded, list) else [decoded]
    return [_provider_id(item) for item in items]


def _provider_id(item: Any) -> str | None:
    """``selected_provider.id``; for a node's error answer (Lasso names no selected provider
    then) the provider of the last attempt, the one whose error was passed on."""
    if not isinstance(item, dict):
        return None
    selected = item.get("selected_provider")
    ident = selected.get("id") if isinstance(selected, dict) else None
    attempts = item.get("attempts")
    if ident is None and isinstance(attempts, list) and attempts:
        last = attempts[-1]
        ident = last.get("provider") if isinstance(last, dict) else None
    return ident if isinstance(ident, str) else None


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    answered: bool = True
    error_code: int | None = None
    http_status: int | None = None
    error_expected: bool = False
    empty_result: bool = False


def error_code(answer: Any) -> int | None:
    error = answer.get("error") if isinstance(answer, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def classify(exc: BaseException | None, wire: Wire, *, expect_revert: bool = False) -> Verdict:
    """What one request's outcome means, given what web3 raised (see the module docstring)."""
    status = wire.status
    answer = wire.answer_dict()
    if exc is None:
        return answer_verdict(wire.answer, status)
    if isinstance(exc, BlockNotFound | TransactionNotFound) and error_code(answer) is None:
        return Verdict(Outcome.RESULT, http_status=status, empty_result=True)
    if isinstance(exc, ContractLogicError):
        return Verdict(
            Outcome.JSONRPC_ERROR,
            error_code=error_code(answer),
            http_status=status,
            error_expected=expect_revert,
        )
    if isinstance(exc, Web3RPCError):
        code = error_code(exc.rpc_response) or error_code(answer)
        return Verdict(Outcome.JSONRPC_ERROR, error_code=code, http_status=status)
    if isinstance(exc, TimeExhausted | TimeoutError):
        return Verdict(Outcome.TIMEOUT, answered=False, http_status=status)
    if isinstance(exc, aiohttp.ClientResponseError):
        outcome = Outcome.HTTP_5XX if exc.status >= 500 else Outcome.JSONRPC_ERROR
        return Verdict(outcome, http_status=exc.status)
    if isinstance(exc, json.JSONDecodeError | BadResponseFormat | UnicodeDecodeError):
        return Verdict(Outcome.NON_JSON, http_status=status)
    if isinstance(exc, NO_ANSWER):
        return Verdict(Outcome.TIMEOUT, answered=False, http_status=status)
    # web3 choked on the answer's shape (a result formatter failed): not a JSON-RPC answer
    # an application could use.
    return Verdict(Outcome.NON_JSON, http_status=status)


def answer_verdict(answer: Any, status: int | None) -> Verdict:
    """The verdict of an answer web3 did not raise on (or a batch item, read directly)."""
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
        return Verdict(Outcome.NON_JSON, http_status=status)
    if "error" in answer:
        return Verdict(Outcome.JSONRPC_ERROR, error_code=error_code(answer), http_status=status)
    if "result" in answer:
        empty = answer["result"] is None or answer["result"] == []
        return Verdict(Outcome.RESULT, http_status=status, empty_result=empty)
    return Verdict(Outcome.NON_JSON, http_status=status)


def failed_wire(exc: BaseException | None, wires: Sequence[Wire], method: str) -> Wire | None:
    """The request ``exc`` belongs to: the first one without an answer, else the call's own
    (the last request of ``method``, else the last request)."""
    if exc is None or not wires:
        return None
    for wire in wires:
        if wire.answer is None:
            return wire
    own = [w for w in wires if w.method == method]
    return own[-1] if own else wires[-1]
