"""The I/O side of the oracle: send a drawn body, time the answer, clean up after it."""

from __future__ import annotations

import json
import time

import httpx

from battle.oracle import deadline_s, decode_json
from battle.strategies import Drawn
from lasso.corpus import Answer

JSON = {"content-type": "application/json"}


def filters_created(drawn: Drawn, lasso: Answer) -> list[str]:
    """The filter ids the gateway handed out for ``drawn``, to uninstall after judging it
    (the gateway allows a client only so many filters, as a node would)."""
    if not any(r.method.startswith("eth_new") for r in drawn.requests):
        return []
    body = decode_json(lasso.body)
    items = body if isinstance(body, list) else [body]
    found = [i.get("result") for i in items if isinstance(i, dict)]
    return [f for f in found if isinstance(f, str) and f.startswith("0x")]


def uninstall_body(filter_ids: list[str]) -> bytes:
    calls = [
        {"jsonrpc": "2.0", "id": n, "method": "eth_uninstallFilter", "params": [f]}
        for n, f in enumerate(filter_ids)
    ]
    return json.dumps(calls).encode()


async def post(client: httpx.AsyncClient, url: str, body: bytes, timeout_s: float) -> Answer:
    response = await client.post(url, content=body, headers=JSON, timeout=timeout_s)
    return Answer(response.status_code, response.content)


async def timed_post(
    client: httpx.AsyncClient, url: str, drawn: Drawn
) -> tuple[Answer | None, float]:
    """The gateway's answer and how long it took; None if none came by the deadline + 5 s."""
    start = time.monotonic()
    try:
        answer: Answer | None = await post(client, url, drawn.body, deadline_s(drawn) + 5)
    except httpx.TimeoutException:
        answer = None
    return answer, time.monotonic() - start
