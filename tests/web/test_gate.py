"""The inbound gate in-process, on trio's MockClock: exact limits, ids kept, events, reloads.

The same behaviour through the real front end (hypercorn on a loopback socket) is in
``test_gate_front.py``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from lasso.config import parse_settings
from lasso.daemon import open_gateway
from lasso.opsevents import ClientLimited
from lasso.registry import Registry
from lasso.reload import ReloadState, reload_once
from lasso.subscriptions.hub import open_subscription_hub
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS, FakeFleet
from tests.support.asgi import AsgiResponse, asgi_request, open_asgi_websocket

KEY_A = "alpha-0123456789abcdef"
KEY_B = "bravo-0123456789abcdef"
KEYS = f"""
[auth]
api_keys = [
  {{ name = "team-a", key = "{KEY_A}" }},
  {{ name = "team-b", sha256 = "{hashlib.sha256(KEY_B.encode()).hexdigest()}", rps = 100, burst = 7 }},
]
"""


def call(rid: Any = 1, method: str = "eth_chainId") -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": []}).encode()


@asynccontextmanager
async def gate_app(extra: str) -> AsyncIterator[LassoASGI]:
    settings = parse_settings(extra + SETTINGS, env={})
    fleet = FakeFleet()
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        app = LassoASGI(gw, create_app(gw))
        app.fleet = fleet  # type: ignore[attr-defined]
        yield app


async def post(app: LassoASGI, rid: Any = 1, path: str = "/rpc/testnet", **kw: Any) -> AsgiResponse:
    body = kw.pop("body", None) or call(rid)
    return await asgi_request(app, "POST", path, body, **kw)


def limited(rid: Any, retry_after_ms: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "error": {
            "code": -32005,
            "message": "Rate limit exceeded: too many requests",
            "data": {"retry_after_ms": retry_after_ms},
        },
    }


# -- rate limits over HTTP ---------------------------------------------------------------


async def test_a_burst_past_the_bucket_gets_429_retry_after_and_32005_with_its_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gate_app("[rate_limit]\nrps = 10\nburst = 20\n") as app:
        answers = [await post(app, rid) for rid in range(1, 51)]
        admitted = [a for a in answers if a.status == 200]
        refused = [a for a in answers if a.status == 429]
        assert len(admitted) == 20 and len(refused) == 30
        assert [a.json()["result"] for a in admitted] == ["0x7a69"] * 20
        assert [a.json() for a in refused] == [limited(rid, 100) for rid in range(21, 51)]
        assert {a.headers["retry-after"] for a in refused} == {"1"}
        assert {a.headers["content-type"] for a in refused} == {"application/json"}
        await trio.sleep(0.1)  # one token back, exactly
        assert (await post(app, 51)).status == 200
        assert (await post(app, 52)).status == 429
        stats = app.gate.statistics()
        assert (stats.admitted, stats.refused_rate, stats.buckets) == (21, 31, 1)
        assert stats.limited_clients == 1


async def test_retry_after_is_whole_seconds_rounded_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gate_app("[rate_limit]\nrps = 0.4\nburst = 1\n") as app:
        assert (await post(app)).status == 200
        refused = await post(app, 2)
        assert refused.status == 429 and refused.headers["retry-after"] == "3"  # 2.5 s
        assert refused.json() == limited(2, 2500)


async def test_a_batch_costs_one_token_per_call_and_is_refused_whole_with_every_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gate_app("[rate_limit]\nrps = 1\nburst = 8\n") as app:
        batch = b"[" + b",".join(call(f"c{i}") for i in range(5)) + b"]"
        assert (await post(app, body=batch)).status == 200  # 3 tokens left
        refused = await post(app, body=batch)
        assert refused.status == 429 and refused.headers["retry-after"] == "2"
        assert refused.json() == [limited(f"c{i}", 2000) for i in range(5)]
        # A notification alone still gets a body: one error, id null.
        note = json.dumps({"jsonrpc": "2.0", "method": "eth_chainId", "params": []}).encode()
        for _ in range(3):
            await post(app, body=note)
        assert (await post(app, body=note)).json() == limited(None, 1000)


async def test_no_limit_unless_configured(autojump_clock: trio.testing.MockClock) -> None:
    async with gate_app("") as app:
        assert all([(await post(app, rid)).status == 200 for rid in range(200)])
        assert app.gate.statistics().buckets == 0


async def test_one_client_limited_event_per_transition_not_per_refusal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gate_app("[rate_limit]\nrps = 1\nburst = 2\n") as app:
        events: list[Any] = []
        app.gateway.events.listen(events.append)
        for rid in range(12):
            await post(app, rid)
        assert [(e.client, e.limit, e.chain, e.profile) for e in events] == [
            ("ip:127.0.0.1", "rate", "testnet", "default")
        ]
        assert isinstance(events[0], ClientLimited)
        await trio.sleep(1)
        assert (await post(app)).status == 200  # out of the limited state
        assert (await post(app)).status == 429  # and into it again: a second event
        assert len(events) == 2
        assert app.gate.statistics().limited_events == 2


async def test_a_profile_and_an_api_key_override_the_limit_with_their_own_buckets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    extra = "[rate_limit]\nrps = 1\nburst = 3\n"
    text = extra + SETTINGS + "[profiles.team.rate_limit]\nrps = 1\nburst = 5\n"
    settings = parse_settings(text, env={})
    async with open_gateway(settings, transports=FakeFleet().transport) as gw:
        app = LassoASGI(gw, create_app(gw))
        team = [await post(app, path="/rpc/profile/team/teamnet") for _ in range(7)]
        assert [a.status for a in team] == [200] * 5 + [429] * 2
        default = [await post(app) for _ in range(4)]  # the default profile's own bucket
        assert [a.status for a in default] == [200] * 3 + [429]
    async with gate_app(KEYS + extra) as app:
        keyed = [await post(app, headers=[("X-Lasso-Api-Key", KEY_B)]) for _ in range(9)]
        assert [a.status for a in keyed] == [200] * 7 + [429] * 2  # the key's burst 7


# -- WebSocket ---------------------------------------------------------------------------


async def test_websocket_frames_share_the_http_bucket_and_the_socket_stays_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gate_app("[rate_limit]\nrps = 10\nburst = 5\n") as app:
        for rid in range(3):
            assert (await post(app, rid)).status == 200
        async with open_asgi_websocket(app, "/ws/rpc/testnet") as ws:
            await ws.send_text(call("w1").decode())
            await ws.send_text(call("w2").decode())
            assert [await ws.receive_json() for _ in range(2)] == [
                {"jsonrpc": "2.0", "id": "w1", "result": "0x7a69"},
                {"jsonrpc": "2.0", "id": "w2", "result": "0x7a69"},
            ]
            await ws.send_text(call("w3").decode())  # the 6th call of this client
            assert await ws.receive_json() == limited("w3", 100)
            batch = "[" + ",".join(call(f"b{i}").decode() for i in range(2)) + "]"
            await ws.send_text(batch)
            assert await ws.receive_json() == [limited("b0", 200), limited("b1", 200)]
            assert (await post(app, 9)).json() == limited(9, 100)  # HTTP: the same bucket
            await trio.sleep(0.1)
            await ws.send_text(call("w4").decode())  # still open, and admitted again
            assert await ws.receive_json() == {"jsonrpc": "2.0", "id": "w4", "result": "0x7a69"}


# -- per-client concurrency --------------------------------------------------------------


async def test_requests_in_flight_per_client_are_capped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gate_app("[rate_limit]\nmax_inflight_per_client = 2\n") as app:
        slow = call(1, "eth_getBalance")
        results: list[AsgiResponse] = []

        async def slow_call() -> None:
            results.append(await post(app, body=slow))

        fleet: FakeFleet = app.fleet  # type: ignore[attr-defined]
        async with trio.open_nursery() as nursery:
            for node in fleet.nodes.values():
                node.delay_s = 5
            nursery.start_soon(slow_call)
            nursery.start_soon(slow_call)
            await trio.sleep(1)
            third = await post(app, 3)
            assert third.status == 429 and third.headers["retry-after"] == "1"
            assert third.json()["error"] == {
                "code": -32005,
                "message": "Rate limit exceeded: too many requests in flight for this client "
                "(at most 2)",
                "data": {"retry_after_ms": 1000},
            }
            assert app.gate.statistics().inflight_clients == 1
        assert [r.status for r in results] == [200, 200]
        assert (await post(app, 4)).status == 200  # the slots came back
        stats = app.gate.statistics()
        assert stats.refused_inflight == 1 and stats.inflight_clients == 0


async def test_websockets_per_client_are_capped_at_the_handshake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gate_app("[rate_limit]\nmax_ws_per_client = 1\n") as app:
        async with open_asgi_websocket(app, "/ws/rpc/testnet") as first:
            await first.accepted.wait()
            async with open_asgi_websocket(app, "/ws/rpc/testnet") as second:
                with pytest.raises(EOFError):
                    await second.receive_text()
                assert not second.accepted.is_set()
                rejection = second.rejection
                assert rejection is not None and rejection["status"] == 429
                assert (b"retry-after", b"1") in rejection["headers"]
                assert json.loads(rejection["body"])["error"]["code"] == -32005
        async with open_asgi_websocket(app, "/ws/rpc/testnet") as third:
            await third.accepted.wait()  # the first one's slot came back
        assert app.gate.statistics().refused_ws == 1


# -- API keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "query"),
    [
        ("/rpc/testnet", [("X-Lasso-Api-Key", KEY_A)], ""),
        ("/rpc/testnet", [], f"api_key={KEY_A}"),
        (f"/rpc/testnet/{KEY_A}", [], ""),
        (f"/rpc/fastest/testnet/{KEY_A}", [], ""),
        (f"/rpc/provider/p2/testnet/{KEY_A}", [], ""),
        (f"/rpc/profile/team/teamnet/{KEY_A}", [], ""),
        ("/rpc/testnet", [("X-Lasso-Api-Key", KEY_B)], ""),  # the hashed form
    ],
)
async def test_a_valid_key_in_each_form_is_accepted(
    path: str, headers: list[tuple[str, str]], query: str
) -> None:
    async with gate_app(KEYS) as app:
        answer = await post(app, path=path, headers=headers, query=query)
        assert answer.status == 200, answer.body
        assert "result" in answer.json()


@pytest.mark.parametrize(
    ("path", "headers", "query", "message"),
    [
        ("/rpc/testnet", [], "", "Unauthorized: an API key is required"),
        ("/rpc/testnet", [("X-Lasso-Api-Key", "wrong")], "", "Unauthorized: invalid API key"),
        ("/rpc/testnet", [], "api_key=", "Unauthorized: invalid API key"),
        ("/rpc/testnet/wrong", [], "", "Unauthorized: invalid API key"),
        (f"/rpc/testnet/{KEY_A}x", [], "", "Unauthorized: invalid API key"),
        ("/rpc/nosuchchain/x/y/z", [], "", "Unauthorized: an API key is required"),
    ],
)
async def test_a_missing_or_wrong_key_gets_401_with_a_json_rpc_error(
    path: str, headers: list[tuple[str, str]], query: str, message: str
) -> None:
    async with gate_app(KEYS) as app:
        answer = await post(app, path=path, headers=headers, query=query)
        assert answer.status == 401
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32001, "message": message},
        }
        assert app.gate.statistics().denied_auth == 1


async def test_with_a_valid_key_an_unknown_route_is_still_404() -> None:
    async with gate_app(KEYS) as app:
        answer = await post(app, path="/rpc/a/b/c/d", headers=[("X-Lasso-Api-Key", KEY_A)])
        assert answer.status == 404 and answer.json()["error"]["code"] == -32602
        # A key segment is only read after a route: here it is part of no route.
        assert (await post(app, path=f"/rpc/a/b/c/d/{KEY_A}")).status == 401


async def test_without_auth_a_key_segment_is_no_route() -> None:
    async with gate_app("") as app:
        assert (await post(app, path=f"/rpc/testnet/{KEY_A}")).status == 404


async def test_each_key_is_its_own_client_for_the_limits() -> None:
    async with gate_app(KEYS + "[rate_limit]\nrps = 0.01\nburst = 2\n") as app:
        a = [await post(app, headers=[("X-Lasso-Api-Key", KEY_A)]) for _ in range(3)]
        via_path = await post(app, path=f"/rpc/testnet/{KEY_A}")
        b = [await post(app, headers=[("X-Lasso-Api-Key", KEY_B)]) for _ in range(3)]
        assert [r.status for r in a] == [200, 200, 429] and via_path.status == 429
        assert [r.status for r in b] == [200] * 3  # team-b: its own rps 100, burst 7
        events = [e for e in app.gateway.events.recent if isinstance(e, ClientLimited)]
        assert [e.client for e in events] == ["key:team-a"]  # the name, never the key


@pytest.mark.parametrize(
    ("path", "headers", "accepted"),
    [
        ("/ws/rpc/testnet", [("X-Lasso-Api-Key", KEY_A)], True),
        (f"/ws/rpc/testnet/{KEY_A}", [], True),
        (f"/ws/rpc/profile/team/teamnet/{KEY_B}", [], True),
        ("/ws/rpc/testnet", [], False),
        ("/ws/rpc/testnet/wrong", [], False),
    ],
)
async def test_websocket_handshakes_need_a_key_too(
    path: str, headers: list[tuple[str, str]], accepted: bool
) -> None:
    async with gate_app(KEYS) as app, open_asgi_websocket(app, path, headers=headers) as ws:
        if accepted:
            await ws.accepted.wait()
            await ws.send_text(call(5).decode())
            assert "result" in await ws.receive_json()
            return
        with trio.fail_after(5), pytest.raises(EOFError):
            await ws.receive_text()  # the app ends the connection after its denial
        assert not ws.accepted.is_set()
        assert ws.rejection["status"] == 401
        assert json.loads(ws.rejection["body"])["error"]["code"] == -32001


async def test_protect_observability_puts_metrics_and_api_behind_a_key_not_health() -> None:
    async with gate_app(KEYS + "protect_observability = true\n") as app:
        for path in ("/metrics", "/api/chains", "/api/metrics/testnet", "/dashboard"):
            denied = await asgi_request(app, "GET", path)
            assert denied.status == 401, path
            assert denied.json()["error"]["code"] == -32001
            with_key = await asgi_request(app, "GET", path, headers=[("X-Lasso-Api-Key", KEY_A)])
            assert with_key.status != 401, path
        assert (await asgi_request(app, "GET", "/metrics", query=f"api_key={KEY_B}")).status == 200
        assert (await asgi_request(app, "GET", "/health")).status == 200
        assert (await asgi_request(app, "GET", "/health/ready")).status in (200, 503)
        assert app.gate.statistics().denied_observability == 4
    async with gate_app(KEYS) as app:  # off by default: keys guard /rpc only
        assert (await asgi_request(app, "GET", "/metrics")).status == 200


# -- reload ------------------------------------------------------------------------------


async def test_a_reload_applies_new_limits_and_keys_and_buckets_survive(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    first = KEYS + "[rate_limit]\nrps = 0.01\nburst = 2\n"
    path = tmp_path / "lasso.toml"
    path.write_text(first + SETTINGS)
    settings = parse_settings(first + SETTINGS, env={})
    async with (
        open_gateway(settings, transports=FakeFleet().transport) as gateway,
        open_subscription_hub(gateway) as hub,
    ):
        state = ReloadState(settings, source=str(path))
        registry = Registry(gateway, hub, state)
        app = LassoASGI(gateway, create_app(gateway, hub, state))

        async def reload(text: str) -> None:
            path.write_text(text + SETTINGS)
            await reload_once(path, state, registry.apply)
            assert state.last is not None and state.last.outcome == "applied"

        a = [("X-Lasso-Api-Key", KEY_A)]
        b = [("X-Lasso-Api-Key", KEY_B)]
        assert [(await post(app, headers=a)).status for _ in range(3)] == [200, 200, 429]
        assert (await post(app, headers=b)).status == 200
        # A larger burst: team-a's bucket is kept (still empty), not made anew and full.
        await reload(first.replace("burst = 2", "burst = 50"))
        assert (await post(app, headers=a)).status == 429
        # team-b is removed: its key is refused, its bucket dropped; team-a's stays.
        without_b = first.replace("burst = 2", "burst = 50").splitlines()
        await reload("\n".join(line for line in without_b if "team-b" not in line))
        assert (await post(app, headers=b)).status == 401
        assert app.gate.statistics().buckets == 1
        assert (await post(app, headers=a)).status == 429
        # The limit is lifted: admitted at once.
        await reload(KEYS)
        assert (await post(app, headers=a)).status == 200


async def test_a_key_in_the_path_never_reaches_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise KeyError("boom")

    async with gate_app(KEYS) as app:
        caplog.set_level("DEBUG", logger="lasso")
        await post(app, path="/rpc/testnet/not-the-key")
        monkeypatch.setattr("lasso.web.asgi.resolve_route", broken)
        answer = await post(app, path=f"/rpc/testnet/{KEY_A}")
        assert answer.status == 500
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("lasso")]
    assert "internal error on /rpc/testnet/***: KeyError: 'boom'" in lines
    assert "auth: ip:127.0.0.1 denied (invalid API key)" in lines
    assert not any(KEY_A in line or "not-the-key" in line for line in lines)


async def test_protect_observability_refuses_a_dashboard_websocket_without_a_key() -> None:
    async with (
        gate_app(KEYS + "protect_observability = true\n") as app,
        open_asgi_websocket(app, "/dashboard/feed") as ws,
    ):
        with trio.fail_after(5), pytest.raises(EOFError):
            await ws.receive_text()
    assert not ws.accepted.is_set()
    assert ws.rejection is not None and ws.rejection["status"] == 401
    assert json.loads(ws.rejection["body"])["error"]["code"] == -32001
