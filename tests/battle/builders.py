"""Hand-built battle events for the SLO tests."""

from __future__ import annotations

from battle.events import (
    ChaosEvent,
    HeadObservation,
    Outcome,
    RequestEvent,
    SubscriptionEvent,
    SubscriptionKind,
)


def req(
    sent_at: float = 0.0,
    latency: float | None = 0.01,
    outcome: Outcome = Outcome.RESULT,
    *,
    provider: str | None = "p1",
    client: str = "c",
    status: int | None = 200,
    sent_id: int | str | None = 1,
    received_id: int | str | None = 1,
    error_expected: bool = False,
    block: int | None = None,
    empty: bool = False,
) -> RequestEvent:
    if outcome is Outcome.TIMEOUT:
        latency, status, received_id = None, None, None
    return RequestEvent(
        scenario="s",
        client=client,
        transport="http",
        method="eth_blockNumber",
        sent_at=sent_at,
        answered_at=None if latency is None else sent_at + latency,
        http_status=status,
        outcome=outcome,
        sent_id=sent_id,
        received_id=received_id,
        error_code=-32000 if outcome is Outcome.JSONRPC_ERROR else None,
        error_expected=error_expected,
        provider=provider,
        block=block,
        empty_result=empty,
    )


def hd(
    number: int,
    at: float | None = None,
    *,
    hash: str | None = None,
    client: str = "c",
    sub: str = "s1",
) -> SubscriptionEvent:
    """A newHeads notification; by default hash ``h<n>`` with parent ``h<n-1>``, at time n."""
    return SubscriptionEvent(
        client=client,
        subscription=sub,
        kind=SubscriptionKind.HEADS,
        number=number,
        hash=hash if hash is not None else f"h{number}",
        parent_hash=f"h{number - 1}",
        received_at=float(number) if at is None else at,
    )


def log(
    number: int,
    index: int,
    at: float,
    *,
    hash: str | None = None,
    removed: bool = False,
    client: str = "c",
) -> SubscriptionEvent:
    return SubscriptionEvent(
        client=client,
        subscription="logs1",
        kind=SubscriptionKind.LOGS,
        number=number,
        hash=hash if hash is not None else f"h{number}",
        parent_hash=f"h{number - 1}",
        received_at=at,
        removed=removed,
        log_index=index,
    )


def seen(number: int, at: float, client: str = "c") -> HeadObservation:
    return HeadObservation(client, number, at)


def fault(target: str | None, start: float, end: float | None = None) -> ChaosEvent:
    return ChaosEvent("kill", target, start, end)
