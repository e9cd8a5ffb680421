"""The HTTP JSON-RPC front end, end to end in-process, on fake nodes."""

from __future__ import annotations

import base64
import json
import re

import pytest
import trio

from lasso.chaos.faults import Fault
from lasso.gateway import Gateway
from lasso.web.asgi import LassoASGI
from tests.conftest import FakeFleet
from tests.support.asgi import AsgiResponse, asgi_request


def rpc(method: str, params: object = (), rid: object = 1) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
    ).encode()


async def post(app: LassoASGI, path: str, body: bytes, **kw: object) -> AsgiResponse:
    return await asgi_request(app, "POST", path, body, **kw)  # type: ignore[arg-type]


async def test_forwards_and_splices_the_client_id(app: LassoASGI) -> None:
    response = await post(app, "/rpc/testnet", rpc("eth_blockNumber", rid="abc"))
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))
    assert response.body == b'{"jsonrpc":"2.0","id":"abc","result":"0x64"}'


@pytest.mark.parametrize("path", ["/rpc/testnet", "/rpc/local", "/rpc/31337", "/rpc/testnet/"])
async def test_chain_by_name_alias_or_id(app: LassoASGI, path: str) -> None:
    assert (await post(app, path, rpc("eth_blockNumber"))).json()["result"] == "0x64"


@pytest.mark.parametrize(
    ("path", "status", "code", "message"),
    [
        ("/rpc/nope", 400, -32602, "Unsupported chain: unknown chain 'nope'"),
        ("/rpc/profile/nope/testnet", 404, -32602, "Profile 'nope' not found"),
        (
            "/rpc/provider/zz/testnet",
            400,
            -32602,
            "Provider 'zz' is not configured for chain 'testnet'",
        ),
        ("/rpc/profile/team/testnet", 400, -32602, "Unsupported chain: unknown chain 'testnet'"),
        ("/rpc/a/b/c/d", 404, -32602, "No such route: /rpc/a/b/c/d"),
    ],
)
async def test_unknown_targets(
    app: LassoASGI, path: str, status: int, code: int, message: str
) -> None:
    response = await post(app, path, rpc("eth_blockNumber"))
    assert response.status == status
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": code, "message": message},
    }


async def test_profiles_are_isolated(app: LassoASGI, fleet: FakeFleet) -> None:
    response = await post(app, "/rpc/profile/team/teamnet", rpc("eth_blockNumber"))
    assert response.json()["result"] == "0x64"
    assert fleet.nodes["t1"].calls == ["eth_blockNumber"]
    assert "p1" not in fleet.nodes or fleet.nodes["p1"].calls == []


@pytest.mark.parametrize(
    ("body", "status", "code", "rid"),
    [
        (b"{not json", 400, -32700, None),
        (b"", 400, -32700, None),
        # The id is readable: the answer keeps it (JSON-RPC 2.0 allows null only when it is not).
        (b'{"jsonrpc":"2.0","id":1,"method":42}', 400, -32600, 1),
        (b'{"jsonrpc":"1.0","id":1,"method":"eth_blockNumber"}', 400, -32600, 1),
        (b"[]", 400, -32600, None),
        (b"[" + b",".join([rpc("eth_blockNumber")] * 6) + b"]", 400, -32600, None),
        (b"7", 400, -32600, None),
    ],
)
async def test_bad_input_gets_jsonrpc_errors(
    app: LassoASGI, body: bytes, status: int, code: int, rid: int | None
) -> None:
    response = await post(app, "/rpc/testnet", body)
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert response.json()["id"] == rid


async def test_body_over_the_limit_is_413(app: LassoASGI) -> None:
    body = rpc("eth_call", [{"data": "0x" + "ab" * 4096}])
    response = await post(app, "/rpc/testnet", body)
    assert response.status == 413
    assert response.json()["error"] == {
        "code": -32600,
        "message": "Invalid Request: request body too large",
    }


async def test_subscriptions_over_http_point_to_websocket(app: LassoASGI) -> None:
    response = await post(app, "/rpc/fastest/testnet", rpc("eth_subscribe", ["newHeads"], rid=4))
    assert response.status == 200
    error = response.json()["error"]
    assert error["code"] == -32601
    assert error["data"] == {"websocket_url": "/ws/rpc/fastest/testnet"}
    assert response.json()["id"] == 4


@pytest.mark.parametrize(
    "method",
    ["eth_sendTransaction", "eth_sign", "personal_sign", "eth_signTransaction", "eth_accounts"],
)
async def test_signing_methods_are_refused(app: LassoASGI, fleet: FakeFleet, method: str) -> None:
    response = await post(app, "/rpc/testnet", rpc(method))
    assert response.json()["error"] == {
        "code": -32601,
        "message": f"Method {method} is not supported by proxy",
    }
    assert all(not node.calls for node in fleet.nodes.values())


async def test_chain_id_is_answered_locally(app: LassoASGI, fleet: FakeFleet) -> None:
    response = await post(app, "/rpc/testnet", rpc("eth_chainId", rid=9))
    assert response.body == b'{"jsonrpc":"2.0","id":9,"result":"0x7a69"}'
    assert all(not node.calls for node in fleet.nodes.values())


async def test_chain_id_is_forwarded_with_a_provider_override(
    app: LassoASGI, fleet: FakeFleet
) -> None:
    response = await post(app, "/rpc/provider/p2/testnet", rpc("eth_chainId"))
    assert response.json()["result"] == "0x7a69"
    assert fleet.nodes["p2"].calls == ["eth_chainId"]


async def test_notification_is_executed_and_gets_204(app: LassoASGI, fleet: FakeFleet) -> None:
    body = b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":[]}'
    response = await post(app, "/rpc/priority/testnet", body)
    assert (response.status, response.body) == (204, b"")
    assert "content-length" not in response.headers
    assert fleet.nodes["p1"].calls == ["eth_blockNumber"]


async def test_batch_keeps_order_with_per_item_errors(app: LassoASGI) -> None:
    body = b"[%b,%b,%b,%b,%b]" % (
        rpc("eth_blockNumber", rid=1),
        b'{"jsonrpc":"2.0","id":2,"method":5}',
        b'{"jsonrpc":"2.0","method":"eth_blockNumber"}',
        rpc("eth_chainId", rid="c"),
        rpc("eth_sign", rid=5),
    )
    response = await post(app, "/rpc/testnet", body)
    assert response.status == 200
    answers = response.json()
    assert [a["id"] for a in answers] == [1, 2, "c", 5]
    assert answers[0]["result"] == "0x64"
    assert answers[1]["error"]["code"] == -32600
    assert answers[2]["result"] == "0x7a69"
    assert answers[3]["error"]["code"] == -32601


async def test_all_notification_batch_is_204(app: LassoASGI) -> None:
    item = b'{"jsonrpc":"2.0","method":"eth_blockNumber"}'
    response = await post(app, "/rpc/testnet", b"[%b,%b]" % (item, item))
    assert (response.status, response.body) == (204, b"")


async def test_meta_in_headers(app: LassoASGI) -> None:
    response = await post(
        app, "/rpc/priority/testnet", rpc("eth_blockNumber"), query="include_meta=headers"
    )
    # the request id (lasso.reqid): process prefix and counter, the X-Request-Id echoed
    assert re.fullmatch(r"[0-9a-f]{6}-[0-9a-f]+", response.headers["x-lasso-request-id"])
    assert response.headers["x-request-id"] == response.headers["x-lasso-request-id"]
    encoded = response.headers["x-lasso-meta"]
    meta = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert meta["request_id"] == response.headers["x-lasso-request-id"]
    assert meta["strategy"] == "priority"
    assert meta["chain"] == "testnet"
    assert meta["transport"] == "http"
    assert meta["selected_provider"] == {"id": "p1", "protocol": "http"}
    assert meta["candidate_providers"] == ["p1:http", "p2:http", "p3:http"]
    assert meta["retries"] == 0
    assert meta["circuit_breaker_state"] == "closed"
    for key in ("upstream_latency_ms", "end_to_end_latency_ms", "overhead_ms"):
        assert meta[key] >= 0
    assert response.json() == {"jsonrpc": "2.0", "id": 1, "result": "0x64"}


async def test_meta_in_body_via_header(app: LassoASGI) -> None:
    response = await post(
        app, "/rpc/testnet", rpc("eth_blockNumber"), headers=[("X-Lasso-Include-Meta", "body")]
    )
    answer = response.json()
    assert answer["result"] == "0x64"
    assert answer["lasso_meta"]["chain"] == "testnet"
    assert "x-lasso-meta" not in response.headers


async def test_no_meta_unless_asked(app: LassoASGI) -> None:
    response = await post(app, "/rpc/testnet", rpc("eth_blockNumber"))
    assert "x-lasso-request-id" not in response.headers
    assert "lasso_meta" not in response.json()


async def test_provider_header_pins_the_provider(app: LassoASGI, fleet: FakeFleet) -> None:
    for _ in range(4):
        await post(
            app, "/rpc/testnet", rpc("eth_blockNumber"), headers=[("X-Lasso-Provider", "p3")]
        )
    assert fleet.nodes["p3"].calls == ["eth_blockNumber"] * 4
    assert fleet.nodes["p1"].calls == fleet.nodes["p2"].calls == []


async def test_pinned_provider_does_not_fail_over(app: LassoASGI, fleet: FakeFleet) -> None:
    fleet.nodes["p2"].fault = Fault.HTML_500
    response = await post(app, "/rpc/provider/p2/testnet", rpc("eth_blockNumber"))
    assert response.json()["error"]["code"] == -32002
    assert fleet.nodes["p1"].calls == fleet.nodes["p3"].calls == []


async def test_failover_hides_a_broken_provider(app: LassoASGI, fleet: FakeFleet) -> None:
    fleet.nodes["p1"].fault = Fault.HTML_500
    response = await post(app, "/rpc/priority/testnet", rpc("eth_blockNumber"))
    assert response.json() == {"jsonrpc": "2.0", "id": 1, "result": "0x64"}
    assert fleet.nodes["p1"].calls == ["eth_blockNumber"]
    assert fleet.nodes["p2"].calls == ["eth_blockNumber"]


async def test_deterministic_error_after_one_call(app: LassoASGI, fleet: FakeFleet) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.REVERT
    response = await post(app, "/rpc/testnet", rpc("eth_call", [{}, "latest"], rid=3))
    assert response.body == (
        b'{"jsonrpc":"2.0","id":3,"error":{"code":3,"message":"execution reverted","data":"0x08c379a0"}}'
    )
    assert sum(len(node.calls) for node in fleet.nodes.values()) == 1


async def test_client_hang_up_cancels_the_upstream_call(
    app: LassoASGI, gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.HANG
    start = trio.current_time()
    response = await post(app, "/rpc/priority/testnet", rpc("eth_getBalance"), hang_up_after_s=0.5)
    assert trio.current_time() - start == pytest.approx(0.5)
    assert response.status is None  # nothing was sent to a client that left
    chain = gateway.profiles["default"]["testnet"]
    stats = chain.providers["p1"].channel("http").breaker.statistics(trio.current_time())
    assert stats.consecutive_failures == 0  # a cancelled attempt is not a failure
    assert chain.latency.statistics().entries == ()  # ...and not a latency sample


async def test_non_rpc_routes_answer_json(app: LassoASGI) -> None:
    for method, path, status in [
        ("GET", "/rpc/testnet", 400),
        ("GET", "/nope", 404),
        ("POST", "/health", 405),
    ]:
        response = await asgi_request(app, method, path)
        assert response.status == status, path
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json()


async def test_health(app: LassoASGI) -> None:
    response = await asgi_request(app, "GET", "/health")
    report = response.json()
    assert report["status"] == "healthy"
    assert report["version"] == "0.1.0"
    assert report["uptime_seconds"] >= 0
    providers = report["chains"]["testnet"]["providers"]
    assert [p["id"] for p in providers] == ["p1", "p2", "p3"]
    assert providers[0]["http"]["circuit"] == "closed"
    assert "secret" not in response.body.decode()
    assert "AbCdEf0123456789" not in response.body.decode()
    assert report["profiles"]["team"]["chains"]["teamnet"]["providers"][0]["id"] == "t1"


async def test_chain_list(app: LassoASGI) -> None:
    chains = (await asgi_request(app, "GET", "/api/chains")).json()["chains"]
    assert {(c["profile"], c["name"], c["chain_id"]) for c in chains} == {
        ("default", "testnet", 31337),
        ("team", "teamnet", 5),
    }


async def test_metrics_per_method(app: LassoASGI, fleet: FakeFleet) -> None:
    for _ in range(3):
        await post(app, "/rpc/priority/testnet", rpc("eth_blockNumber"))
    fleet.nodes["p1"].fault = Fault.HTML_500
    await post(
        app,
        "/rpc/priority/testnet",
        rpc("eth_getBalance", ["0x0000000000000000000000000000000000000001", "latest"]),
    )
    report = (await asgi_request(app, "GET", "/api/metrics/local")).json()
    assert report["chain"] == "testnet"
    methods = {p["id"]: {m["method"]: m for m in p["methods"]} for p in report["providers"]}
    assert methods["p1"]["eth_blockNumber"]["samples"] == 3
    assert methods["p1"]["eth_blockNumber"]["p50_ms"] is not None
    assert methods["p1"]["eth_getBalance"]["samples"] == 0
    assert methods["p1"]["eth_getBalance"]["failures"] == 1
    assert methods["p2"]["eth_getBalance"]["samples"] == 1
    assert methods["p3"] == {}


async def test_metrics_for_an_unknown_chain_is_404(app: LassoASGI) -> None:
    response = await asgi_request(app, "GET", "/api/metrics/nope")
    assert response.status == 404
    assert response.json()["error"]["code"] == -32602


async def test_a_batch_item_waiting_for_a_slot_keeps_the_request_deadline(
    app: LassoASGI, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.HANG
    body = b"[" + b",".join(rpc("eth_blockNumber", rid=i) for i in range(5)) + b"]"
    start = trio.current_time()
    response = await post(app, "/rpc/testnet", body)  # 5 items, 4 at a time
    assert trio.current_time() - start <= 1.0  # every item inside eth_blockNumber's 1 s
    assert [a["id"] for a in response.json()] == [0, 1, 2, 3, 4]
    assert all(a["error"]["code"] == -32000 for a in response.json())


async def test_overrides_are_case_insensitive(app: LassoASGI) -> None:
    response = await post(
        app, "/rpc/testnet", rpc("eth_blockNumber"), query="transport=HTTP&include_meta=BODY"
    )
    assert response.json()["lasso_meta"]["transport"] == "http"
