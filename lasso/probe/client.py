"""Talking to one provider directly, as ``lasso probe`` does: no routing, no breaker.

:class:`DirectClient` sends single calls and one batch over the provider's own
:class:`~lasso.upstream.http.HttpTransport` (with its configured headers, key and URL
credentials), each under its own deadline, and reads answers with the gateway's
:func:`~lasso.core.reply.interpret`, so errors arrive classified exactly as the
gateway would see them. :func:`probe_subscriptions` opens the provider's WebSocket,
subscribes to ``newHeads`` and unsubscribes.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import msgspec
import trio

from lasso.config import ProviderConfig, mask_url
from lasso.config.secrets import with_url_credentials
from lasso.core.classify import classify_rpc_error
from lasso.core.jsonrpc import encode_upstream
from lasso.core.probe_methods import Verdict, method_verdict
from lasso.core.reply import interpret
from lasso.errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRpcError,
    UpstreamTimeout,
)
from lasso.upstream.http import HttpTransport
from lasso.upstream.provider import request_headers
from lasso.upstream.ws.dial import close_quietly, dial

__all__ = ["DirectClient", "probe_subscriptions", "rpc_error_verdict"]

#: A rate-limited probe is retried once, after the wait the provider asked for, capped.
MAX_RATE_LIMIT_WAIT_S = 2.0
_WS_MAX_MESSAGE_BYTES = 16 * 2**20


class DirectClient:
    """Calls to one provider's HTTP endpoint, each bounded by ``call_timeout_s``."""

    def __init__(self, config: ProviderConfig, *, call_timeout_s: float) -> None:
        self.config = config
        self.call_timeout_s = call_timeout_s
        self._http = HttpTransport(
            config.url,
            with_url_credentials(config.url, request_headers(config)),
            provider_id=config.id,
            max_connections=8,
        )
        self._ids = itertools.count(1)

    async def call(self, method: str, params: list[Any]) -> bytes:
        """The raw result, or the classified upstream error (a timeout is
        :class:`UpstreamTimeout`). A rate limit is waited out once."""
        try:
            return await self._call_once(method, params)
        except UpstreamRateLimited as exc:
            wait_ms = exc.retry_after_ms if exc.retry_after_ms is not None else 1000
            await trio.sleep(min(wait_ms / 1000, MAX_RATE_LIMIT_WAIT_S))
        return await self._call_once(method, params)

    async def call_json(self, method: str, params: list[Any]) -> Any:
        """:meth:`call`, decoded."""
        return msgspec.json.decode(await self.call(method, params))

    async def _call_once(self, method: str, params: list[Any]) -> bytes:
        upstream_id = next(self._ids)
        body = encode_upstream(method, msgspec.json.encode(params), upstream_id)
        with trio.move_on_after(self.call_timeout_s):
            response = await self._http.post(body)
            return interpret(
                response.body,
                upstream_id,
                provider_id=self.config.id,
                status=response.status,
                retry_after=response.retry_after,
                wall_now_s=time.time() if response.retry_after else None,
            )
        raise UpstreamTimeout(
            f"no answer to {method} within {self.call_timeout_s:g} s", provider_id=self.config.id
        )

    async def supports_batch(self) -> tuple[bool | None, str]:
        """Send a two-item batch; True when both answers come back as a JSON array.

        None (unknown) when the provider could not be reached or timed out.
        """
        first, second = next(self._ids), next(self._ids)
        body = b"[%b,%b]" % (
            encode_upstream("eth_chainId", b"[]", first),
            encode_upstream("eth_blockNumber", b"[]", second),
        )
        with trio.move_on_after(self.call_timeout_s):
            try:
                response = await self._http.post(body)
            except UpstreamError as exc:
                return None, exc.message
            return _batch_answered(response.status, bytes(response.body), {first, second})
        return None, f"no answer within {self.call_timeout_s:g} s"

    async def aclose(self) -> None:
        await self._http.aclose()


class _Answer(msgspec.Struct):
    id: Any = None
    result: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: absent
    error: dict[str, Any] | None = None


def _batch_answered(status: int, body: bytes, ids: set[int]) -> tuple[bool, str]:
    if status != 200:
        return False, f"HTTP {status}"
    try:
        answers = msgspec.json.decode(body, type=list[_Answer])
    except (msgspec.DecodeError, msgspec.ValidationError):
        snippet = body[:80].decode("utf-8", "replace")
        return False, f"not a JSON array: {snippet}"
    answered = {a.id for a in answers if a.result and a.error is None}
    if answered == ids:
        return True, ""
    errors = [str(a.error.get("message", "")) for a in answers if a.error is not None]
    return False, errors[0] if errors else f"{len(answers)} answers for 2 calls"


async def probe_subscriptions(config: ProviderConfig) -> tuple[bool | None, str]:
    """``eth_subscribe`` ``newHeads`` then ``eth_unsubscribe`` over the provider's WebSocket.

    True when the subscription was made; False when the node refused the method;
    None when there is no ``ws_url`` or the WebSocket could not be used. The caller's
    cancel scope bounds it.
    """
    if config.ws_url is None:
        return None, "no ws_url"
    headers = with_url_credentials(config.ws_url, request_headers(config))
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    try:
        async with trio.open_nursery() as nursery:
            try:
                return await _subscribe_once(nursery, config.ws_url, raw_headers)
            finally:
                nursery.cancel_scope.cancel()
    except Exception as exc:  # OSError, a bad URL, trio-websocket's handshake and close errors
        while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # what went wrong, out of the nursery's group
        return None, f"{mask_url(config.ws_url)}: {type(exc).__name__}: {exc}"


async def _subscribe_once(
    nursery: trio.Nursery, url: str, headers: list[tuple[bytes, bytes]]
) -> tuple[bool | None, str]:
    dialed = await dial(nursery, url, headers, _WS_MAX_MESSAGE_BYTES)
    try:
        answer = await _ws_call(dialed.ws, 1, "eth_subscribe", ["newHeads"])
        if answer.error is not None:
            code = int(answer.error.get("code", 0))
            message = str(answer.error.get("message", ""))
            verdict = _subscribe_verdict(code, message)
            return (False if verdict is Verdict.UNSUPPORTED else None), message
        subscription = msgspec.json.decode(answer.result) if answer.result else None
        if not isinstance(subscription, str):
            return None, f"eth_subscribe answered {subscription!r}"
        await _ws_call(dialed.ws, 2, "eth_unsubscribe", [subscription])
        return True, ""
    finally:
        await close_quietly(dialed.stream)


def _subscribe_verdict(code: int, message: str) -> Verdict:
    return method_verdict(code, classify_rpc_error(code, message, None).reason)


async def _ws_call(ws: Any, rid: int, method: str, params: list[Any]) -> _Answer:
    """Send one request; return the answer with its id, skipping notifications."""
    await ws.send_message(encode_upstream(method, msgspec.json.encode(params), rid).decode())
    while True:
        message = await ws.get_message()
        try:
            answer = msgspec.json.decode(message, type=_Answer)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # not one answer (a notification batch, junk): keep reading
        if answer.id == rid:
            return answer


def rpc_error_verdict(exc: UpstreamError) -> Verdict:
    """What an exception from :meth:`DirectClient.call` says about the method."""
    if isinstance(exc, UpstreamRpcError):
        return method_verdict(exc.rpc_code, exc.reason)
    return Verdict.UNKNOWN
