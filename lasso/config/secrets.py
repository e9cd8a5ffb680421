"""Credentials in provider URLs: sending them, and hiding them before they are shown.

Userinfo (``https://user:pass@host``) is sent as HTTP Basic auth, over HTTP and
in the WebSocket handshake: ``with_url_credentials`` adds the header (user and
password percent-decoded, UTF-8, as RFC 7617 suggests) unless the provider's
headers already carry an ``Authorization`` of their own, which wins.

Hiding them is :mod:`lasso.core.mask`'s job (one implementation for every
surface): :func:`mask_url` masks one URL by shape, and :func:`secret_values` lists
every secret value a configuration holds, for a :class:`lasso.core.mask.Redactor`
to replace wherever it appears (logs, error messages, routing metadata):

- every field the schema marks ``extra={"secret": True}`` (provider header values,
  ``api_key``; any later secret field so marked), and for ``Bearer``/``Basic`` values
  the token alone as well;
- for every URL field (the schema marks them with ``url_schemes``): the parts
  :func:`mask_url` hides (userinfo, query values, key-like path segments) and the
  Basic ``Authorization`` the userinfo becomes;
- any string under a field whose name says key, secret, token or password
  (``[auth] api_keys`` and per-key tables, whatever shape they take).
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

from lasso.core.mask import MASK, looks_like_key, mask_url, url_secrets

__all__ = [
    "MASK",
    "basic_auth",
    "looks_like_key",
    "mask_url",
    "secret_values",
    "with_url_credentials",
]

_SECRET_NAME = re.compile(r"key|secret|token|passw", re.IGNORECASE)


def secret_values(settings: msgspec.Struct) -> frozenset[str]:
    """Every secret value in ``settings`` (or any config Struct): see the module doc."""
    return frozenset(_walk(settings, None, named_secret=False))


@functools.cache
def _fields(cls: type) -> dict[str, msgspec.inspect.Type]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.name: f.type for f in info.fields}


def _walk(value: Any, typ: msgspec.inspect.Type | None, *, named_secret: bool) -> Iterator[str]:
    if isinstance(value, msgspec.Struct):
        for name, field_type in _fields(type(value)).items():
            secret = named_secret or bool(_SECRET_NAME.search(name))
            yield from _walk(getattr(value, name), field_type, named_secret=secret)
        return
    extra = _extra(typ)
    if isinstance(value, str):
        if extra.get("secret") or named_secret:
            yield from _credential(value)
        if extra.get("url_schemes"):
            yield from url_secrets(value)
            auth = basic_auth(value)
            if auth is not None:
                yield from _credential(auth)
        return
    if isinstance(value, Mapping):
        key_type, value_type = _dict_types(typ)
        for key, item in value.items():
            yield from _walk(key, key_type, named_secret=named_secret)
            yield from _walk(item, value_type, named_secret=named_secret)
    elif isinstance(value, (tuple, list, set, frozenset)):
        item_type = _item_type(typ)
        for item in value:
            yield from _walk(item, item_type, named_secret=named_secret)


def _credential(value: str) -> list[str]:
    """A header value and, for ``Bearer x`` / ``Basic x``, the token ``x`` alone."""
    scheme, space, token = value.partition(" ")
    return [value, token.strip()] if space and scheme.isalpha() and token.strip() else [value]


def _unwrap(typ: msgspec.inspect.Type | None) -> msgspec.inspect.Type | None:
    if isinstance(typ, msgspec.inspect.UnionType):
        real = [t for t in typ.types if not isinstance(t, msgspec.inspect.NoneType)]
        return real[0] if len(real) == 1 else None
    return typ


def _extra(typ: msgspec.inspect.Type | None) -> dict[str, Any]:
    typ = _unwrap(typ)
    if isinstance(typ, msgspec.inspect.Metadata):
        return dict(typ.extra or {})
    return {}


def _dict_types(
    typ: msgspec.inspect.Type | None,
) -> tuple[msgspec.inspect.Type | None, msgspec.inspect.Type | None]:
    typ = _unwrap(typ)
    if isinstance(typ, msgspec.inspect.Metadata):
        typ = typ.type
    if isinstance(typ, msgspec.inspect.DictType):
        return typ.key_type, typ.value_type
    return None, None


def _item_type(typ: msgspec.inspect.Type | None) -> msgspec.inspect.Type | None:
    typ = _unwrap(typ)
    if isinstance(typ, msgspec.inspect.Metadata):
        typ = typ.type
    item = getattr(typ, "item_type", None)
    return item if isinstance(item, msgspec.inspect.Type) else None


def basic_auth(url: str) -> str | None:
    """The ``Authorization`` value for the userinfo of ``url``; None if it has none."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if "@" not in parts.netloc:
        return None
    userinfo = parts.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def with_url_credentials(url: str, headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with lower-cased names, plus Basic auth from ``url``'s userinfo
    unless an ``Authorization`` header is already there."""
    out = {name.lower(): value for name, value in headers.items()}
    if "authorization" not in out and (auth := basic_auth(url)) is not None:
        out["authorization"] = auth
    return out
