"""Hostile clients against the gate, through the real front end: a spray of client
addresses (every loopback source address is its own client) and a flood of guessed API
keys. The gate's state stays bounded, no sprayed request escapes its limit, and a
well-behaved keyed client beside the attack is never refused.

A fake loopback node is upstream: the gate answers before any upstream is asked.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from lasso.config import parse_settings
from lasso.daemon import serve
from lasso.web.asgi import LassoASGI
from tests.support.auth_node import open_auth_node
from tests.support.hostile import read_http_response

pytestmark = pytest.mark.slow

CANARY_KEY = "canary-0123456789abcdef"
BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()


@asynccontextmanager
async def open_front(extra: str) -> AsyncIterator[tuple[str, list[LassoASGI]]]:
    """The real front end; yields its base URL and (to read its statistics) the ASGI app."""
    apps: list[LassoASGI] = []

    class Recorded(LassoASGI):  # the daemon's app, kept to read its gate's statistics
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            apps.append(self)

    async with open_auth_node("") as node:
        text = extra + (
            "[chains.fake]\nchain_id = 31337\nproviders = [ "
            f'{{ id = "f1", url = "http://127.0.0.1:{node.http_port}" }} ]\n'
        )
        shutdown = trio.Event()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("lasso.daemon.LassoASGI", Recorded)
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    lambda task_status: serve(
                        parse_settings(text, env={}),
                        host="127.0.0.1",
                        port=0,
                        shutdown=shutdown,
                        task_status=task_status,
                    )
                )
                try:
                    yield binds[0], apps
                finally:
                    shutdown.set()


async def raw_post(port: int, source: str) -> int:
    """One request from ``source`` (a loopback address), on its own connection."""
    head = (
        f"POST /rpc/fake HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
    ).encode()
    async with await trio.open_tcp_stream("127.0.0.1", port, local_address=source) as stream:
        await stream.send_all(head + BODY)
        return (await read_http_response(stream)).status


async def test_a_spray_of_client_addresses_keeps_the_bucket_table_bounded() -> None:
    extra = "[rate_limit]\nrps = 0.001\nburst = 2\nmax_clients = 50\n"
    with trio.fail_after(60):
        async with open_front(extra) as (base, apps):
            port = int(base.rsplit(":", 1)[1])
            statuses: dict[str, list[int]] = {}
            for n in range(200):  # 200 clients, 3 requests each, one after the other
                source = f"127.0.{n // 250 + 1}.{n % 250 + 2}"
                statuses[source] = [await raw_post(port, source) for _ in range(3)]
            stats = apps[0].gate.statistics()
    assert all(s == [200, 200, 429] for s in statuses.values())  # nobody escaped
    assert stats.buckets == 50 and stats.evicted == 150
    assert stats.admitted == 400 and stats.refused_rate == 200


async def test_a_flood_of_guessed_keys_is_refused_and_a_keyed_client_beside_it_is_not() -> None:
    extra = (
        f'[auth]\napi_keys = [ {{ name = "canary", key = "{CANARY_KEY}" }},'
        ' { name = "other", key = "other-0123456789abcdef" } ]\n'
        "[rate_limit]\nrps = 0.001\nburst = 5\n"
    )
    canary_ok = 0
    attack_statuses: list[int] = []
    with trio.fail_after(60):
        async with open_front(extra) as (base, apps):

            async def attack() -> None:
                async with httpx.AsyncClient(base_url=base) as http:
                    for _ in range(500):
                        guess = secrets.token_urlsafe(16)
                        path = "/rpc/fake" if len(attack_statuses) % 2 else f"/rpc/fake/{guess}"
                        headers = {"X-Lasso-Api-Key": guess} if len(attack_statuses) % 2 else {}
                        answer = await http.post(path, content=BODY, headers=headers)
                        attack_statuses.append(answer.status_code)

            async def canary() -> None:
                nonlocal canary_ok
                async with httpx.AsyncClient(base_url=base) as http:
                    for _ in range(5):
                        answer = await http.post(
                            "/rpc/fake", content=BODY, headers={"X-Lasso-Api-Key": CANARY_KEY}
                        )
                        canary_ok += answer.status_code == 200 and "result" in answer.json()
                        await trio.sleep(0.01)  # pacing beside the attack, not a wait

            async with trio.open_nursery() as nursery:
                nursery.start_soon(attack)
                nursery.start_soon(canary)
            stats = apps[0].gate.statistics()
    assert attack_statuses == [401] * 500
    assert canary_ok == 5
    assert stats.denied_auth == 500
    assert stats.buckets == 1  # a wrong key never gets a bucket: only the canary's
