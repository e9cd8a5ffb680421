"""What the gateway's answer to one JSON-RPC request was: pure classification, no I/O.

:func:`classify` turns an HTTP status and a body (or a WebSocket frame, status ``None``) into an
:class:`Answer`: the :class:`battle.events.Outcome`, the id that came back, the error code, and
the decoded result (for head numbers and the read-your-head check). :func:`provider_from_meta`
reads the serving provider out of an ``x-lasso-meta`` header (``?include_meta=headers``).

The order of the checks is the order a client would notice them in:

1. a body that looks like an HTML page is ``HTML``, whatever the status;
2. a JSON object with ``result`` or ``error`` (and no ``method``) is a JSON-RPC response:
   ``RESULT`` or ``JSONRPC_ERROR``, whatever the status (5xx still counts in the 5xx SLO);
3. anything else (not JSON, truncated JSON, a batch array answering a single call, a JSON
   value that is not a response) is ``HTTP_5XX`` under a 5xx status, else ``NON_JSON``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import msgspec

from battle.events import JsonId, Outcome

_DECODE = msgspec.json.Decoder()


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    received_id: JsonId = None
    error_code: int | None = None
    result: Any = None  # the decoded "result" member (RESULT only)


def _looks_like_html(body: bytes) -> bool:
    head = body[:256].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<title"))


def _json_id(value: Any) -> JsonId:
    if isinstance(value, bool):  # JSON true/false is no id; keep its text so it mismatches
        return str(value).lower()
    if isinstance(value, int | str):
        return value
    return None if value is None else msgspec.json.encode(value).decode()


def classify(status: int | None, body: bytes) -> Answer:
    """The outcome of one single (non-batch) call answered with ``status`` and ``body``."""
    if _looks_like_html(body):
        return Answer(Outcome.HTML)
    try:
        message = _DECODE.decode(body)
    except msgspec.DecodeError:
        message = None
    if isinstance(message, dict) and "method" not in message:
        received = _json_id(message.get("id"))
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            code = code if isinstance(code, int) and not isinstance(code, bool) else None
            return Answer(Outcome.JSONRPC_ERROR, received, code)
        if "result" in message:
            return Answer(Outcome.RESULT, received, None, message["result"])
    if status is not None and status >= 500:
        return Answer(Outcome.HTTP_5XX)
    return Answer(Outcome.NON_JSON)


def is_empty(result: Any) -> bool:
    """A read answered with nothing: JSON ``null`` or ``[]``."""
    return result is None or result == []


def provider_from_meta(header: str | bytes | None) -> str | None:
    """The provider an ``x-lasso-meta`` header (base64url JSON, no padding) names.

    That is ``selected_provider.id``; an error answer has none, and then the provider of the
    last failed attempt is taken (the one whose error the client got). A batch's header is a
    list; its first entry naming a provider is taken. Anything unreadable, or an answer Lasso
    made itself (``served_by: lasso``), is ``None``: no provider rather than a guessed one.
    """
    if not header:
        return None
    raw = header.encode() if isinstance(header, str) else header
    try:
        meta = _DECODE.decode(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    for entry in meta if isinstance(meta, list) else [meta]:
        provider = _entry_provider(entry) if isinstance(entry, dict) else None
        if provider is not None:
            return provider
    return None


def _entry_provider(entry: dict[str, Any]) -> str | None:
    selected = entry.get("selected_provider")
    if isinstance(selected, dict) and isinstance(selected.get("id"), str):
        return str(selected["id"])
    attempts = entry.get("attempts")
    if isinstance(attempts, list) and attempts and isinstance(attempts[-1], dict):
        last = attempts[-1].get("provider")
        return last if isinstance(last, str) else None
    return None


def hex_number(value: Any) -> int | None:
    """A JSON-RPC quantity (``"0x1a"``) as an int; None when it is not one."""
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None
