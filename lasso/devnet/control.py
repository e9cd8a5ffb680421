"""JSON-RPC control calls to the devnet's anvil nodes.

This is test and tooling traffic, not the gateway's hot path, so plain
``httpx.AsyncClient`` is fine. Every call is bounded by one deadline here, so
a wedged node fails the devnet loudly instead of hanging it.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import trio

from lasso.devnet.errors import DevnetError, DevnetRpcError

CALL_DEADLINE_S = 10.0


class _Error(msgspec.Struct, frozen=True):
    code: int
    message: str
    data: Any = None


class _Response(msgspec.Struct, frozen=True):
    result: Any = None
    error: _Error | None = None


_decoder = msgspec.json.Decoder(_Response)
_encoder = msgspec.json.Encoder()


class ControlClient:
    """Sends one JSON-RPC request at a time to any node URL."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._next_id = 0

    async def call(self, url: str, method: str, params: list[Any]) -> Any:
        """Return the call's ``result``; raise DevnetRpcError for a JSON-RPC error."""
        self._next_id += 1
        body = _encoder.encode(
            {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        )
        try:
            with trio.fail_after(CALL_DEADLINE_S):
                response = await self._http.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
        except (httpx.HTTPError, trio.TooSlowError) as exc:
            raise DevnetError(f"{url}: {method} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise DevnetError(f"{url}: {method} answered HTTP {response.status_code}")
        try:
            answer = _decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise DevnetError(f"{url}: {method} answered malformed JSON-RPC: {exc}") from exc
        if answer.error is not None:
            error = answer.error
            raise DevnetRpcError(url, method, error.code, error.message, error.data)
        return answer.result


def open_http_client() -> httpx.AsyncClient:
    """An HTTP client for loopback control calls; ignores proxy environment variables."""
    return httpx.AsyncClient(timeout=None, trust_env=False)
