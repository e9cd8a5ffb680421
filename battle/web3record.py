"""web3 calls turned into events, in the web3 thread, for the trio side to collect.

:func:`timed` runs one web3 call in its own :class:`~battle.web3calls.Exchange` and records a
:class:`RequestEvent` per request the call made (web3 may make more than one: see
:class:`~battle.web3calls.Exchange`), each timed from the moment web3 formed it to its
answer. The request the call failed on gets the verdict of what web3 raised; the others the
verdict of their own answer. :func:`timed_batch` records one event per batch item, each with
the outcome of the answer web3 paired with it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from battle.events import Event, JsonId, Outcome, RequestEvent
from battle.web3calls import (
    EXCHANGE,
    Exchange,
    Verdict,
    Wire,
    answer_verdict,
    classify,
    failed_wire,
    providers_of,
)

_T = TypeVar("_T")


class Clock:
    """Trio's clock read from another thread: ``perf_counter() + offset``, the offset taken in
    trio before the thread started."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.perf_counter() + self.offset


@dataclass
class Sink:
    """Events made in the web3 thread, drained by the trio side (``deque`` is thread-safe)."""

    scenario: str
    clock: Clock
    events: deque[Event] = field(default_factory=deque)

    def put(self, event: Event) -> None:
        self.events.append(event)


async def _run(
    exchange: Exchange, call: Callable[[], Awaitable[_T]]
) -> tuple[_T | None, Exception | None]:
    token = EXCHANGE.set(exchange)
    try:
        return await call(), None
    except Exception as exc:  # every failure is an outcome to record
        return None, exc
    finally:
        EXCHANGE.reset(token)


async def timed(
    sink: Sink,
    client: str,
    transport: str,
    method: str,
    call: Callable[[], Awaitable[_T]],
    *,
    expect_revert: bool = False,
    block: int | None = None,
) -> _T | None:
    """Await one web3 call, record each request it made, return its value (None if it
    raised)."""
    exchange = Exchange(now=sink.clock.now)
    started = sink.clock.now()
    value, exc = await _run(exchange, call)
    wires = exchange.wires or [Wire(method, None, started)]  # failed before forming one
    failed = failed_wire(exc, wires, method)
    for wire in wires:
        own = wire.method == method
        if wire is failed:
            verdict = classify(exc, wire, expect_revert=expect_revert and own)
        else:
            verdict = answer_verdict(wire.answer, wire.status)
        providers = providers_of(wire.meta)
        sink.put(
            _event(
                sink,
                client,
                transport,
                wire,
                verdict,
                received_id=_id_of(wire.answer),
                provider=providers[0] if providers else None,
                block=block if own else None,
            )
        )
    return value


def _event(
    sink: Sink,
    client: str,
    transport: str,
    wire: Wire,
    verdict: Verdict,
    *,
    received_id: JsonId,
    provider: str | None,
    block: int | None = None,
) -> RequestEvent:
    answered = verdict.outcome in (Outcome.RESULT, Outcome.JSONRPC_ERROR)
    answered_at = wire.answered_at if wire.answered_at is not None else sink.clock.now()
    return RequestEvent(
        scenario=sink.scenario,
        client=client,
        transport=transport,
        method=wire.method,
        sent_at=wire.sent_at,
        answered_at=answered_at if verdict.answered else None,
        http_status=verdict.http_status,
        outcome=verdict.outcome,
        sent_id=wire.sent_id,
        received_id=received_id if answered else None,
        error_code=verdict.error_code,
        error_expected=verdict.error_expected,
        provider=provider,
        block=block,
        empty_result=verdict.empty_result,
    )


def _id_of(answer: Any) -> JsonId:
    ident = answer.get("id") if isinstance(answer, dict) else None
    return ident if isinstance(ident, int | str) else None


async def timed_batch(
    sink: Sink, client: str, call: Callable[[], Awaitable[Sequence[Any]]]
) -> Sequence[Any] | None:
    """Await one web3 batch (over HTTP); record each item with its own outcome, read from the
    answer web3 paired with it (web3 raises for the whole batch if any item failed)."""
    exchange = Exchange(now=sink.clock.now)
    values, exc = await _run(exchange, call)
    wires = exchange.wires
    last = wires[-1] if wires else None
    answers = last.answer if last is not None else None
    items = answers if isinstance(answers, list) else None
    providers = providers_of(last.meta) if last is not None else []
    whole = classify(exc, last) if last is not None and exc is not None else None
    for index, wire in enumerate(wires):
        if last is not None:  # one POST for all: its status and answer are on the last wire
            wire.status, wire.answered_at = last.status, last.answered_at
        if items is not None and index < len(items):
            verdict, received = answer_verdict(items[index], wire.status), _id_of(items[index])
        else:
            verdict = whole or answer_verdict(answers, wire.status)
            received = _id_of(answers)
        sink.put(
            _event(
                sink,
                client,
                "http",
                wire,
                verdict,
                received_id=received,
                provider=providers[index] if index < len(providers) else None,
            )
        )
    return values
