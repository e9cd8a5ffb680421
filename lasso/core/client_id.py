"""Reading the client's id from a request that cannot be parsed whole.

JSON-RPC 2.0 allows a null id in an error only when the id cannot be read. A
request that is not UTF-8, or nested beyond the decoder's reach, is still
answered with its id when the id can be read soundly:

- not UTF-8: the envelope is decoded with every member kept raw (msgspec does
  not validate UTF-8 inside a raw value), and the id is used if it is valid;
- too deep to decode (msgspec recurses per level and raises ``RecursionError``
  near Python's recursion limit, about 900 levels from the server's stack): the
  id is read where clients put it, first after nothing but simple string members
  (viem: ``jsonrpc, id, ...``) or last before the closing brace (ethers, web3.py:
  ``..., id, jsonrpc``). Only the first and last 256 bytes are searched, and only
  there is the member surely top-level.
"""

from __future__ import annotations

import re

import msgspec

__all__ = ["ID_STARTS", "is_utf8", "readable_id", "shallow_id"]

#: First bytes of an id JSON-RPC allows: a string, a number or null.
ID_STARTS = frozenset(b'"-0123456789n')


class _IdOnly(msgspec.Struct):
    id: msgspec.Raw = msgspec.Raw(b"")


_decode_id = msgspec.json.Decoder(_IdOnly).decode


def is_utf8(raw: bytes) -> bool:
    """Valid UTF-8 (RFC 8259 JSON text must be)."""
    if raw.isascii():  # C speed, no copy: nearly every request
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def readable_id(raw: bytes) -> bytes:
    """The raw ``id`` of a request that is otherwise unreadable, or ``null``."""
    try:
        rid = bytes(_decode_id(raw).id)
    except RecursionError:
        return shallow_id(raw)
    except msgspec.DecodeError:
        return b"null"
    return rid if rid and rid[0] in ID_STARTS and is_utf8(rid) else b"null"


_SCALAR_ID = rb'(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|"[^"\\]*"|null)'
_SIMPLE_MEMBER = rb'\s*"(?:jsonrpc|method)"\s*:\s*"[^"\\]*"\s*'
_ID_FIRST = re.compile(rb'\s*\{(?:%b,)*\s*"id"\s*:\s*%b\s*[,}]' % (_SIMPLE_MEMBER, _SCALAR_ID))
_ID_LAST = re.compile(rb'[{,]\s*"id"\s*:\s*%b\s*(?:,%b)*\}\s*\Z' % (_SCALAR_ID, _SIMPLE_MEMBER))
_ENDS = 256


def shallow_id(raw: bytes) -> bytes:
    """The id of a request nested too deep to decode, if it sits at either end; or ``null``."""
    found = _ID_FIRST.match(raw[:_ENDS]) or _ID_LAST.search(raw[-_ENDS:])
    rid = found.group(1) if found else b"null"
    return rid if is_utf8(rid) else b"null"
