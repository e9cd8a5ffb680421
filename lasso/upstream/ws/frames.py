"""What one frame from an upstream WebSocket is, decided from its envelope alone.

Pure: no I/O, no clock. Only the envelope is decoded; a reply is handed on as
the whole frame (``lasso.core.reply.interpret`` reads it like an HTTP body) and
a notification's ``params.result`` stays raw bytes. Close codes get a name for
log lines and events.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Junk", "Push", "Reply", "StrayError", "close_code_name", "parse_frame"]

_EMPTY = msgspec.Raw(b"")


class _Push(msgspec.Struct):
    subscription: str
    result: msgspec.Raw = _EMPTY


class _Frame(msgspec.Struct):
    id: Any = None
    method: Any = None
    params: _Push | None = None
    result: msgspec.Raw = _EMPTY
    error: msgspec.Raw = _EMPTY


class Reply(msgspec.Struct, frozen=True):
    """An answer to request ``id``; ``result`` is the raw result (empty for an error)."""

    id: int
    result: bytes


class Push(msgspec.Struct, frozen=True):
    """An ``eth_subscription`` notification."""

    subscription: str
    payload: bytes


class StrayError(msgspec.Struct, frozen=True):
    """An error object with a null id: a request the upstream could not read, or a complaint.

    ``code`` is the error's code when it has one (-32700 and -32600 mean "could
    not read a request"; :class:`lasso.upstream.ws.link.Link` decides whose).
    """

    error: bytes
    code: int | None = None


class _ErrorCode(msgspec.Struct):
    code: Any = None


class Junk(msgspec.Struct, frozen=True):
    """Anything else: not JSON, a batch, a foreign id, an unknown notification."""

    reason: str


Frame = Reply | Push | StrayError | Junk

_decode = msgspec.json.Decoder(_Frame).decode
_decode_code = msgspec.json.Decoder(_ErrorCode).decode


def parse_frame(data: bytes) -> Frame:
    try:
        frame = _decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # ValidationError included
        return Junk(f"undecodable frame: {exc}")
    if frame.method is not None:
        if frame.method == "eth_subscription" and frame.params is not None and frame.params.result:
            return Push(frame.params.subscription, bytes(frame.params.result))
        return Junk(f"unexpected notification {frame.method!r}")
    rid = frame.id
    if type(rid) is int:
        return Reply(rid, bytes(frame.result))
    if rid is None and frame.error:
        return StrayError(bytes(frame.error), _error_code(frame.error))
    return Junk(f"reply with an id we never sent: {rid!r}")


def _error_code(error: msgspec.Raw) -> int | None:
    try:
        code = _decode_code(error).code
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    return code if type(code) is int else None


_CLOSE_CODES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status",
    1006: "abnormal closure",
    1007: "invalid payload",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal server error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}


def close_code_name(code: int) -> str:
    return _CLOSE_CODES.get(code, "unknown close code")
