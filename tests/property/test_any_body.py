"""Any request body yields a JSON-RPC answer: never an exception, a 5xx or non-JSON."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lasso.config import parse_settings
from lasso.daemon import open_gateway
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS, FakeFleet
from tests.support.asgi import asgi_request

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
methods = st.sampled_from(
    ["eth_blockNumber", "eth_chainId", "eth_getBalance", "eth_sign", "eth_subscribe", "nope_x", ""]
) | st.text(max_size=12)
requests = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "id": st.integers() | st.text(max_size=6) | st.none() | json_values,
        "method": methods | json_values,
        "params": st.lists(json_values, max_size=3) | json_values,
    },
)


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int) -> bytes:
    params = b"[" * depth + b"]" * depth
    return b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":%b}' % params


def spliced(body: bytes, at: int, junk: bytes) -> bytes:
    return body[:at] + junk + body[at:]


#: Hostile shapes from issue 7: absurd nesting (the test body limit is 4,096 bytes) and
#: bytes that are not UTF-8 anywhere in a request.
hostile = st.integers(1, 2000).map(nested) | requests.map(encoded).flatmap(
    lambda b: st.builds(spliced, st.just(b), st.integers(0, len(b)), st.binary(min_size=1))
)

bodies = (
    st.binary(max_size=200)
    | json_values.map(encoded)
    | requests.map(encoded)
    | st.lists(requests | json_values, max_size=7).map(encoded)
    | requests.map(encoded).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
    | hostile
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
async def test_any_body_gets_a_jsonrpc_answer(body: bytes) -> None:
    fleet = FakeFleet()
    config = parse_settings(SETTINGS, env={})
    async with open_gateway(config, rng=random.Random(1), transports=fleet.transport) as gateway:
        app = LassoASGI(gateway, create_app(gateway))
        response = await asgi_request(app, "POST", "/rpc/testnet", body)
    assert response.status in (200, 204, 400, 413)
    if response.status == 204:
        assert response.body == b""
        return
    assert response.headers["content-type"] == "application/json"
    answer = msgspec.json.decode(response.body)
    items = answer if isinstance(answer, list) else [answer]
    assert items
    for item in items:
        assert item["jsonrpc"] == "2.0"
        assert "id" in item
        assert ("result" in item) != ("error" in item)
        if "error" in item:
            assert isinstance(item["error"]["code"], int)
            assert isinstance(item["error"]["message"], str)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests, rid=st.integers(-(2**53), 2**53) | st.text(max_size=6))
async def test_a_readable_id_is_always_kept(request: dict[str, Any], rid: int | str) -> None:
    """JSON-RPC 2.0 answers with a null id only when the id cannot be read."""
    try:  # Infinity is not JSON: such a body is a parse error, rightly with a null id
        body = json.dumps({**request, "id": rid}, allow_nan=False).encode()
    except ValueError:
        assume(False)
    fleet = FakeFleet()
    config = parse_settings(SETTINGS, env={})
    async with open_gateway(config, rng=random.Random(1), transports=fleet.transport) as gateway:
        app = LassoASGI(gateway, create_app(gateway))
        response = await asgi_request(app, "POST", "/rpc/testnet", body)
    assert msgspec.json.decode(response.body)["id"] == rid
