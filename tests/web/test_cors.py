"""CORS: preflights answered, every response (errors too) readable by an allowed origin.

Before: ``OPTIONS /rpc/devnet`` got 400 "JSON-RPC requests must use POST" and no
response carried ``Access-Control-Allow-Origin``, so no browser dapp could call
the gateway directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from lasso.config import parse_settings
from lasso.config.load import ConfigError
from lasso.config.schema import CorsConfig
from lasso.core.cors import CorsPolicy
from lasso.web.cors import CorsLayer, policy_for
from tests.support.front import open_lasso

DAPP = "https://dapp.example"
EVIL = "https://evil.example"
CHAIN_ID = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
JSON = {"content-type": "application/json"}


def settings_text(cors: str) -> str:
    # eth_chainId is answered locally: no upstream is needed behind these tests.
    return (
        f"[server]\nmax_body_bytes = 1000\n[cors]\n{cors}\n"
        '[chains.devnet]\nchain_id = 31337\nproviders = [{ id = "n0", url = "http://127.0.0.1:9" }]\n'
    )


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with open_lasso(
        parse_settings(settings_text(f'allow_origins = ["{DAPP}"]'), env={})
    ) as b:
        yield b


def preflight(origin: str, headers: str = "content-type") -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": headers,
    }


# --- the pure policy ---------------------------------------------------------------------


def test_policy_exact_origins_echo_and_vary() -> None:
    policy = policy_for(CorsConfig(allow_origins=(DAPP,)))
    assert policy.enabled and policy.allows(DAPP.encode())
    assert not policy.allows(EVIL.encode())
    headers = dict(policy.response_headers(DAPP.encode()))
    assert headers[b"access-control-allow-origin"] == DAPP.encode()
    assert headers[b"vary"] == b"origin"
    assert b"x-lasso-meta" in headers[b"access-control-expose-headers"]
    assert policy.response_headers(EVIL.encode()) == [(b"vary", b"origin")]
    assert policy.preflight_headers(EVIL.encode()) is None


def test_policy_wildcard_is_a_fixed_star_unless_credentials() -> None:
    star = policy_for(CorsConfig(allow_origins=("*",)))
    assert dict(star.response_headers(EVIL.encode()))[b"access-control-allow-origin"] == b"*"
    assert b"vary" not in dict(star.response_headers(EVIL.encode()))
    creds = CorsPolicy(
        [DAPP], allow_headers=["a"], expose_headers=[], max_age_s=5, allow_credentials=True
    )
    pre = dict(creds.preflight_headers(DAPP.encode()) or [])
    assert pre[b"access-control-allow-credentials"] == b"true"
    assert pre[b"access-control-max-age"] == b"5"
    assert pre[b"access-control-allow-methods"] == b"POST, GET, OPTIONS"


def test_private_network_access_is_granted_to_an_allowed_origin() -> None:
    policy = policy_for(CorsConfig(allow_origins=(DAPP,)))
    asked = dict(policy.preflight_headers(DAPP.encode(), private_network=True) or [])
    assert asked[b"access-control-allow-private-network"] == b"true"
    plain = dict(policy.preflight_headers(DAPP.encode()) or [])
    assert b"access-control-allow-private-network" not in plain


def test_off_by_default() -> None:
    assert not policy_for(CorsConfig()).enabled


@pytest.mark.parametrize(
    ("cors", "fragment"),
    [
        ('allow_origins = ["https://dapp.example/path"]', "cors.allow_origins[0]"),
        ('allow_origins = ["*"]\nallow_credentials = true', "cors.allow_credentials"),
        ('allow_headers = ["bad header"]', "cors.allow_headers[0]"),
    ],
)
def test_bad_cors_config_is_named(cors: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(settings_text(cors), env={})
    assert fragment in str(info.value)


# --- through the real front end -------------------------------------------------------------


async def test_preflight_and_responses_from_an_allowed_origin(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for path in ("/rpc/devnet", "/rpc/profile/default/devnet", "/health", "/api/chains"):
            answer = await client.options(path, headers=preflight(DAPP))
            assert answer.status_code == 204, path
            assert answer.headers["access-control-allow-origin"] == DAPP
            assert answer.headers["vary"] == "origin"
            assert answer.headers["access-control-allow-methods"] == "POST, GET, OPTIONS"
            allowed = answer.headers["access-control-allow-headers"].split(", ")
            assert {"content-type", "x-lasso-include-meta", "x-lasso-api-key"} <= set(allowed)
            assert answer.headers["access-control-max-age"] == "600"
            assert answer.content == b""

        local = await client.options(
            "/rpc/devnet",
            headers={**preflight(DAPP), "access-control-request-private-network": "true"},
        )
        assert local.headers["access-control-allow-private-network"] == "true"

        ok = await client.post(
            "/rpc/devnet",
            content=CHAIN_ID,
            headers={**JSON, "origin": DAPP, "x-lasso-include-meta": "headers"},
        )
        assert ok.status_code == 200 and ok.json()["result"] == "0x7a69"
        assert ok.headers["access-control-allow-origin"] == DAPP
        exposed = ok.headers["access-control-expose-headers"].split(", ")
        assert {"x-lasso-meta", "x-lasso-request-id", "retry-after"} <= set(exposed)

        # Errors must be readable too, or the dapp sees only "network error".
        errors = [
            await client.post("/rpc/nochain", content=CHAIN_ID, headers={"origin": DAPP}),
            await client.post("/rpc/devnet", content=b"{", headers={"origin": DAPP}),
            await client.post("/rpc/devnet", content=b" " * 2000, headers={"origin": DAPP}),
            await client.get("/rpc/devnet", headers={"origin": DAPP}),
            await client.get("/nowhere", headers={"origin": DAPP}),
            await client.get("/health", headers={"origin": DAPP}),
        ]
        assert [e.status_code for e in errors] == [400, 400, 413, 400, 404, 200]
        for answer in errors:
            assert answer.headers["access-control-allow-origin"] == DAPP
            assert answer.headers["content-type"] == "application/json"


async def test_a_disallowed_origin_gets_no_cors_headers(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        refused = await client.options("/rpc/devnet", headers=preflight(EVIL))
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        assert refused.json()["error"] == {
            "code": -32600,
            "message": "Invalid Request: origin not allowed by CORS",
        }
        served = await client.post("/rpc/devnet", content=CHAIN_ID, headers={"origin": EVIL})
        assert served.status_code == 200  # CORS is not access control: the browser hides it
        assert "access-control-allow-origin" not in served.headers
        # No Origin at all (curl, a backend): nothing changes.
        plain = await client.post("/rpc/devnet", content=CHAIN_ID)
        assert "access-control-allow-origin" not in plain.headers
        assert "vary" not in plain.headers


async def test_cors_off_changes_nothing() -> None:
    settings = parse_settings(settings_text(""), env={})
    async with open_lasso(settings) as base, httpx.AsyncClient(base_url=base) as client:
        answer = await client.options("/rpc/devnet", headers=preflight(DAPP))
        assert answer.status_code == 400
        assert "access-control-allow-origin" not in answer.headers
        ok = await client.post("/rpc/devnet", content=CHAIN_ID, headers={"origin": DAPP})
        assert ok.status_code == 200
        assert "access-control-allow-origin" not in ok.headers


async def test_a_reload_applies_new_origins() -> None:
    config = [CorsConfig(allow_origins=(DAPP,))]
    sent: list[dict[str, object]] = []

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("a preflight never reaches the app")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    layer = CorsLayer(app, lambda: config[0])  # type: ignore[arg-type]
    scope = {
        "type": "http",
        "method": "OPTIONS",
        "path": "/rpc/devnet",
        "headers": [(b"origin", EVIL.encode()), (b"access-control-request-method", b"POST")],
    }
    await layer(scope, None, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 403
    config[0] = CorsConfig(allow_origins=(DAPP, EVIL), max_age_s=60)
    sent.clear()
    await layer(scope, None, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 204
    assert (b"access-control-max-age", b"60") in sent[0]["headers"]  # type: ignore[operator]
