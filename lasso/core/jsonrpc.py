"""JSON-RPC 2.0 wire format: parse envelopes, splice ids, assemble answers.

Only envelopes are decoded. ``params`` and ``id`` stay raw JSON bytes
(``msgspec.Raw``) from the client to the upstream, and the upstream's
``result`` stays raw bytes from the upstream to the client: a result is never
decoded and re-encoded. The client's answer is assembled around those bytes
with the client's own ``id`` bytes spliced in.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lasso.core.client_id import ID_STARTS, is_utf8, readable_id, shallow_id
from lasso.core.nesting import nesting_exceeds
from lasso.errors import InvalidRequest, LassoError, ParseError

_EMPTY = msgspec.Raw(b"")


class _Envelope(msgspec.Struct):
    jsonrpc: Any = None
    id: msgspec.Raw = _EMPTY
    method: Any = None
    params: msgspec.Raw = _EMPTY


class _Reply(msgspec.Struct):
    jsonrpc: Any = None
    id: Any = None
    result: msgspec.Raw = _EMPTY
    error: msgspec.Raw = _EMPTY


class RpcErrorObject(msgspec.Struct):
    code: int
    message: str = ""
    data: msgspec.Raw = _EMPTY


class Call(msgspec.Struct, frozen=True):
    """One valid request. ``id`` is the client's raw id; ``None`` means a notification."""

    method: str
    params: bytes
    id: bytes | None


class BadItem(msgspec.Struct, frozen=True):
    """A batch item that is not a valid request; answered with its own error."""

    id: bytes
    error: LassoError


Item = Call | BadItem

_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_batch = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_reply = msgspec.json.Decoder(_Reply).decode
_decode_error_object = msgspec.json.Decoder(RpcErrorObject).decode
_encode = msgspec.json.Encoder().encode

#: What :func:`parse_body` allows when the caller does not say (``[server] max_json_depth``).
DEFAULT_MAX_DEPTH = 64


def parse_body(
    body: bytes, *, max_batch: int, max_depth: int = DEFAULT_MAX_DEPTH
) -> Call | list[Item]:
    """Parse a request body into one call or a batch of items.

    Raises :class:`ParseError` for bytes that are not JSON and
    :class:`InvalidRequest` for JSON that is not a request (or an empty or
    oversized batch); the error's ``reply_id`` is the client's id when it can
    be read. Invalid items inside a batch become :class:`BadItem`. ``params``
    nested deeper than ``max_depth`` levels is an invalid request: it never
    reaches a provider.
    """
    stripped = body.lstrip()
    if stripped[:1] == b"[":
        return _parse_batch(body, max_batch, max_depth)
    item = _parse_item(body, max_depth)
    if isinstance(item, BadItem):
        item.error.reply_id = None if item.id == b"null" else item.id
        raise item.error
    return item


def _parse_batch(body: bytes, max_batch: int, max_depth: int) -> list[Item]:
    try:
        raw_items = _decode_batch(body)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except msgspec.DecodeError as exc:
        raise ParseError("Parse error: invalid JSON") from exc
    if not raw_items:
        raise InvalidRequest("Invalid Request: empty batch")
    if len(raw_items) > max_batch:
        raise InvalidRequest(f"Invalid Request: batch too large (at most {max_batch} items)")
    return [_parse_item(bytes(raw), max_depth) for raw in raw_items]


def _parse_item(raw: bytes, max_depth: int) -> Item:
    """One request object; a :class:`BadItem` carrying the readable id if it is not valid."""
    if not is_utf8(raw):  # never forwarded: a node cannot read it either
        return BadItem(readable_id(raw), ParseError("Parse error: not valid UTF-8"))
    try:
        envelope = _decode_envelope(raw)
    except RecursionError:
        return BadItem(shallow_id(raw), _too_deep(max_depth))
    except msgspec.ValidationError:
        return BadItem(b"null", InvalidRequest("Invalid Request: expected a request object"))
    except msgspec.DecodeError as exc:
        error = ParseError("Parse error: invalid JSON")
        error.__cause__ = exc
        return BadItem(b"null", error)
    rid = _as_node_writes_it(bytes(envelope.id))
    try:
        call = _validate(envelope, rid)
    except InvalidRequest as exc:
        return BadItem(rid if rid and rid[0] in ID_STARTS else b"null", exc)
    if nesting_exceeds(call.params, max_depth):
        return BadItem(rid or b"null", _too_deep(max_depth))
    return call


def _validate(envelope: _Envelope, rid: bytes) -> Call:
    if envelope.jsonrpc != "2.0":
        raise InvalidRequest('Invalid Request: jsonrpc must be "2.0"')
    if not isinstance(envelope.method, str):
        raise InvalidRequest("Invalid Request: method must be a string")
    if rid and rid[0] not in ID_STARTS:
        raise InvalidRequest("Invalid Request: id must be a string, number or null")
    # Absent (b"") and null params are forwarded as the client wrote them: a node words
    # its answer to a missing argument differently for each, and Lasso must not change it.
    params = bytes(envelope.params)
    if params and params != b"null" and params[0] not in b"[{":
        raise InvalidRequest("Invalid Request: params must be an array or an object")
    return Call(method=envelope.method, params=params, id=rid or None)


def _as_node_writes_it(rid: bytes) -> bytes:
    """The id as a node echoes it: a string id with escapes comes back decoded.

    A node decodes the id and encodes it again (``"\\u00e9t\\u00e9"`` comes back as
    ``"été"``, ``"a\\/b"`` as ``"a/b"``); any other id is already in the form it
    would write, and is passed through as the client's bytes.
    """
    if b"\\" not in rid:
        return rid
    try:
        return _encode(msgspec.json.decode(rid))
    except msgspec.DecodeError:
        return rid


def _too_deep(max_depth: int) -> InvalidRequest:
    return InvalidRequest(f"Invalid Request: params nested deeper than {max_depth} levels")


# --- upstream side ----------------------------------------------------------


def encode_upstream(method: str, params: bytes, upstream_id: int) -> bytes:
    """The request as sent upstream, with our private correlation id.

    ``params`` is the client's bytes; empty means the client sent no ``params``
    member, and then neither does Lasso.
    """
    if not params:
        return b'{"jsonrpc":"2.0","id":%d,"method":%b}' % (upstream_id, _encode(method))
    return b'{"jsonrpc":"2.0","id":%d,"method":%b,"params":%b}' % (
        upstream_id,
        _encode(method),
        params,
    )


class Reply(msgspec.Struct, frozen=True):
    """An upstream answer: either raw result bytes or a decoded error object."""

    result: bytes | None
    error: RpcErrorObject | None
    raw_error: bytes


class MalformedReply(Exception):
    """The upstream body is not a JSON-RPC response to our request."""


#: Errors a node answers with a null id when it could not read the request at all.
UNREADABLE_REQUEST_CODES = frozenset({-32700, -32600})


def decode_reply(body: bytes | bytearray, expected_id: int | str) -> Reply:
    """Decode only the envelope of an upstream answer and check its id.

    A -32700 or -32600 error with a null id is the node saying it could not
    read the request (JSON-RPC 2.0 §5: the id is null when it cannot be
    detected). Given in answer to one request we sent, it is that request's
    answer: the client's request was bad, not the provider.
    """
    try:
        reply = _decode_reply(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedReply(f"not a JSON-RPC response object: {exc}") from exc
    has_error = bool(reply.error) and bytes(reply.error) != b"null"  # "error": null by a result
    if reply.id != expected_id or isinstance(reply.id, bool):
        if reply.id is not None or not has_error:
            raise MalformedReply(f"response id {reply.id!r} does not match request id")
        error = _error_object(reply.error)
        if error.code not in UNREADABLE_REQUEST_CODES:
            raise MalformedReply(f"error {error.code} with a null id for request {expected_id}")
        return Reply(result=None, error=error, raw_error=bytes(reply.error))
    if has_error:
        return Reply(result=None, error=_error_object(reply.error), raw_error=bytes(reply.error))
    if not reply.result:
        raise MalformedReply("response has neither result nor error")
    return Reply(result=bytes(reply.result), error=None, raw_error=b"")


def _error_object(raw: msgspec.Raw) -> RpcErrorObject:
    try:
        return _decode_error_object(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedReply(f"malformed error object: {exc}") from exc


# --- client answers ---------------------------------------------------------


def result_body(client_id: bytes, result: bytes) -> bytes:
    """The client's answer: the provider's result bytes with the client's id.

    ``join``, not ``%``: one allocation of the exact size and one copy of the result
    (a 5 MB ``eth_getLogs`` result: 0.35 ms, where bytes formatting took 1.8 ms).
    """
    return b"".join((b'{"jsonrpc":"2.0","id":', client_id, b',"result":', result, b"}"))


def raw_error_body(client_id: bytes, raw_error: bytes) -> bytes:
    """A provider's error object passed to the client unchanged."""
    return b"".join((b'{"jsonrpc":"2.0","id":', client_id, b',"error":', raw_error, b"}"))


def error_object(code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _encode(error)


def error_body(client_id: bytes | None, code: int, message: str, data: Any = None) -> bytes:
    return raw_error_body(client_id or b"null", error_object(code, message, data))


def lasso_error_body(client_id: bytes | None, exc: LassoError) -> bytes:
    return error_body(client_id, exc.code, exc.message, exc.data)


def batch_body(answers: list[bytes]) -> bytes:
    return b"[" + b",".join(answers) + b"]"


def with_member(answer: bytes, key: str, value: Any) -> bytes:
    """Append one member to an answer object without re-encoding the rest."""
    return answer[:-1] + b',"%b":%b}' % (key.encode(), _encode(value))


def encode_json(value: Any) -> bytes:
    return _encode(value)
