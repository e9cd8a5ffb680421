"""Publishing operator events from the I/O shell: one function per thing that happens.

The pure core decides that something changed (a breaker moved, a channel became
rate-limited, a request was quarantined); the shell that drove it calls one of
these, which names where it happened (the chain's profile and name, the provider)
and publishes one :mod:`lasso.opsevents` event on the chain's ``events``. Each is
called exactly once per transition:

=====================  ==========================================================
BreakerChanged         each breaker transition, handed over once by its channel
                       (:func:`watch_channel`, wired by :class:`lasso.chain.ChainRuntime`)
ProviderUp/Down        a provider's upstream WebSocket connected / lost (or its
                       first dial failed): :func:`watch_websocket`. HTTP has no
                       connection: its up/down is its breaker (closed / open).
Failover               a call that failed on one provider and was answered by
                       another (:func:`failover`, from :mod:`lasso.dispatch`)
UpstreamRateLimited    a channel entered a rate-limited period (429 or a
                       rate-limit error), not every 429 of it
Quarantined            a request shape was quarantined (:mod:`lasso.core.poison`)
Reloaded               a SIGHUP reload's result (:func:`reloaded`)
=====================  ==========================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from lasso.core.breaker import BreakerTransition
from lasso.core.channel import Channel
from lasso.opsevents import (
    BreakerChanged,
    Failover,
    OpsEvents,
    ProviderDown,
    ProviderUp,
    Quarantined,
    Reloaded,
    UpstreamRateLimited,
)

if TYPE_CHECKING:
    from lasso.chain import ChainRuntime
    from lasso.outcome import Outcome

__all__ = [
    "failover",
    "quarantined",
    "rate_limited",
    "reloaded",
    "watch_channel",
    "watch_websocket",
]


def _now() -> tuple[float, float]:
    """``at`` (trio's clock) and ``wall`` (Unix time) for an event made now."""
    return trio.current_time(), time.time()


def _wall(at: float) -> float:
    """Wall time of ``at`` (a lazy transition is drained a little later than it happened)."""
    try:
        lag_s = max(0.0, trio.current_time() - at)
    except RuntimeError:  # outside trio: a synchronous test drives the core
        lag_s = 0.0
    return time.time() - lag_s


def watch_channel(chain: ChainRuntime, channel: Channel) -> None:
    """Publish each of ``channel``'s breaker transitions as a ``BreakerChanged``."""

    def changed(channel: Channel, transition: BreakerTransition) -> None:
        chain.events.publish(
            BreakerChanged(
                at=transition.at,
                wall=_wall(transition.at),
                profile=chain.profile,
                chain=chain.name,
                provider=channel.provider_id,
                transport=channel.transport,
                old=transition.old.value,
                new=transition.new.value,
                reason=transition.reason,
                recovery_probe=transition.recovery_probe,
            )
        )

    channel.observer = changed


def watch_websocket(chain: ChainRuntime, provider_id: str) -> Callable[[bool, str], None]:
    """The WebSocket's ``on_link(up, reason)``: a ``ProviderUp`` / ``ProviderDown``."""

    def link(up: bool, reason: str) -> None:
        at, wall = _now()
        where = {"profile": chain.profile, "chain": chain.name, "provider": provider_id}
        # The provider seen working again / failing: a request that loses it after a drop
        # cannot have crashed it (lasso.core.poison, the outage rule).
        if up:
            chain.poison.working(provider_id, at)
            chain.events.publish(ProviderUp(at=at, wall=wall, transport="ws", **where))
        else:
            chain.poison.failing(provider_id, at)
            down = ProviderDown(at=at, wall=wall, transport="ws", reason=reason, **where)
            chain.events.publish(down)

    return link


def failover(chain: ChainRuntime, method: str, outcome: Outcome, first_attempt: int) -> None:
    """A call answered by ``outcome.provider`` after failing elsewhere: one ``Failover``.

    ``first_attempt`` is where this dispatch's attempts start in ``outcome.attempts``
    (an outcome can be shared by a retry); skipped channels are not failures.
    """
    served = outcome.provider
    if served is None:
        return
    failed = [
        a
        for a in outcome.attempts[first_attempt:]
        if a.category != "skipped" and a.provider != served
    ]
    if not failed:
        return
    last = failed[-1]
    at, wall = _now()
    chain.events.publish(
        Failover(
            at=at,
            wall=wall,
            profile=chain.profile,
            chain=chain.name,
            provider=last.provider,
            method=method,
            to_provider=served,
            reason=f"{last.category}: {last.message}"[:200],
        )
    )


def rate_limited(
    chain: ChainRuntime, provider_id: str, transport: str, retry_after_ms: int | None
) -> None:
    """A channel started a rate-limited period (see :meth:`Channel.mark_limited`)."""
    at, wall = _now()
    event = UpstreamRateLimited(
        at=at,
        wall=wall,
        profile=chain.profile,
        chain=chain.name,
        provider=provider_id,
        transport=transport,
        retry_after_ms=retry_after_ms,
    )
    chain.events.publish(event)


def quarantined(chain: ChainRuntime, method: str, providers: list[str], seconds: float) -> None:
    """A request that lost the connection to ``providers`` mid-request was quarantined."""
    at, wall = _now()
    event = Quarantined(
        at=at,
        wall=wall,
        profile=chain.profile,
        chain=chain.name,
        provider=providers[-1] if providers else "",
        method=method,
        seconds=seconds,
        reason=f"lost the connection mid-request to {', '.join(providers)}",
    )
    chain.events.publish(event)


def reloaded(events: OpsEvents, generation: int, result: str, summary: str) -> None:
    """A reload attempt ended: ``result`` is applied, rejected or unchanged."""
    at, wall = _now()
    events.publish(
        Reloaded(at=at, wall=wall, generation=generation, result=result, summary=summary)
    )
