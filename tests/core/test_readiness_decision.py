"""The readiness decision (lasso.core.readiness): pure, time passed in."""

from __future__ import annotations

from typing import Any

from lasso.core.breaker import CircuitState
from lasso.core.readiness import ChainState, ChannelState, ProviderState, decide

CLOSED, OPEN, HALF = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def http(circuit: CircuitState = CLOSED, **kw: Any) -> ChannelState:
    return ChannelState(transport="http", circuit=circuit, **kw)


def ws(circuit: CircuitState = CLOSED, **kw: Any) -> ChannelState:
    return ChannelState(transport="ws", circuit=circuit, **kw)


def chain(*providers: tuple[str, tuple[ChannelState, ...]], name: str = "c") -> ChainState:
    return ChainState("default", name, tuple(ProviderState(p, ch) for p, ch in providers))


def test_closed_and_half_open_http_can_serve() -> None:
    for circuit in (CLOSED, HALF):
        verdict = decide([chain(("p1", (http(circuit),)))], now=0.0)
        assert verdict.ready and verdict.chains[0].available == ("p1",)


def test_every_http_breaker_open_is_not_ready_and_says_why() -> None:
    state = chain(
        ("p1", (http(OPEN, recovery_deadline=42.0),)),
        ("p2", (http(OPEN),)),
    )
    verdict = decide([state], now=30.0)
    assert not verdict.ready
    (c,) = verdict.not_ready
    assert (c.profile, c.chain, c.available) == ("default", "c", ())
    assert c.unavailable == {
        "p1": ("http: breaker open (probe in 12.0 s)",),
        "p2": ("http: breaker open",),
    }


def test_one_provider_able_to_serve_makes_the_chain_ready() -> None:
    verdict = decide([chain(("p1", (http(OPEN),)), ("p2", (http(),)))], now=0.0)
    assert verdict.ready
    assert verdict.chains[0].available == ("p2",)
    assert verdict.chains[0].unavailable == {"p1": ("http: breaker open",)}


def test_a_quarantined_channel_cannot_serve() -> None:
    verdict = decide([chain(("p1", (http(quarantined=True),)))], now=0.0)
    assert not verdict.ready
    assert verdict.chains[0].unavailable["p1"] == ("http: quarantined (restarting too often)",)


def test_a_connected_websocket_with_a_closed_breaker_serves_when_http_is_open() -> None:
    verdict = decide([chain(("p1", (http(OPEN), ws())))], now=0.0)
    assert verdict.ready


def test_a_websocket_stuck_reconnecting_never_counts() -> None:
    # its breaker stays closed while it is down: only `connected` tells
    down = ws(connected=False, ws_state="backoff")
    verdict = decide([chain(("p1", (http(OPEN), down)))], now=0.0)
    assert not verdict.ready
    assert verdict.chains[0].unavailable["p1"] == (
        "http: breaker open",
        "ws: not connected (backoff)",
    )


def test_a_connected_websocket_with_an_open_breaker_or_unrouted_does_not_count() -> None:
    for channel, reason in (
        (ws(OPEN), "ws: breaker open"),
        (
            ws(routed=False),
            "ws: connected but not used for requests (websocket.route_unary = false)",
        ),
    ):
        verdict = decide([chain(("p1", (http(OPEN), channel)))], now=0.0)
        assert not verdict.ready
        assert verdict.chains[0].unavailable["p1"][1] == reason


def test_every_chain_of_every_profile_must_be_ready() -> None:
    good = chain(("p1", (http(),)), name="a")
    bad = ChainState("team", "b", (ProviderState("t1", (http(OPEN),)),))
    verdict = decide([good, bad], now=0.0)
    assert not verdict.ready
    assert [(c.profile, c.chain) for c in verdict.not_ready] == [("team", "b")]
    assert decide([good], now=0.0).ready


def test_a_chain_without_providers_is_not_ready() -> None:
    verdict = decide([chain()], now=0.0)
    assert not verdict.ready and verdict.chains[0].unavailable == {}
