"""Credentials in provider URLs: sending them, and hiding them before they are shown.

Userinfo (``https://user:pass@host``) is sent as HTTP Basic auth, over HTTP and
in the WebSocket handshake: ``with_url_credentials`` adds the header (user and
password percent-decoded, UTF-8, as RFC 7617 suggests) unless the provider's
headers already carry an ``Authorization`` of their own, which wins.

Providers put keys in several places; ``mask_url`` hides each of them:

- userinfo, user and password alike (a user name is often the key itself, as in
  ``https://KEY:@host``): ``https://user:pass@host`` -> ``https://***:***@host``,
  and a bare ``https://KEY@host`` -> ``https://***@host``;
- query values: ``?apikey=abc&x=1`` -> ``?apikey=***&x=***``; a fragment -> ``#***``;
- path segments that look like keys (Alchemy ``/v2/<key>``, Infura ``/v3/<hex>``,
  QuickNode ``/<hex>/``, Ankr ``/eth/<hex>``, UUIDs): ``***``.

The scheme, host, port and ordinary path segments (``/v2``, ``/eth``) stay
readable so an operator can still tell providers apart.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

__all__ = ["basic_auth", "mask_url", "with_url_credentials"]

MASK = "***"
_TOKEN = re.compile(r"[A-Za-z0-9_~=.+-]+")
_LONG_KEY_CHARS = 20
_SHORT_KEY_CHARS = 12
_SHORT_KEY_DIGITS = 3


def mask_url(url: str) -> str:
    """``url`` with anything that may be a credential replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    out = f"{parts.scheme}://" if parts.scheme else ""
    out += _mask_netloc(parts.netloc)
    out += "/".join(_mask_segment(segment) for segment in parts.path.split("/"))
    if parts.query:
        out += "?" + "&".join(_mask_query_item(item) for item in parts.query.split("&"))
    if parts.fragment:
        out += "#" + MASK
    return out


def _mask_netloc(netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return netloc
    _user, colon, _password = userinfo.partition(":")
    return f"{MASK}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"


def _mask_segment(segment: str) -> str:
    return MASK if looks_like_key(segment) else segment


def _mask_query_item(item: str) -> str:
    name, eq, _value = item.partition("=")
    return f"{name}={MASK}" if eq else MASK


def looks_like_key(segment: str) -> bool:
    """True for a path segment that is probably an API key or token."""
    if not _TOKEN.fullmatch(segment):
        return len(segment) >= _LONG_KEY_CHARS
    if len(segment) >= _LONG_KEY_CHARS:
        return True
    digits = sum(c.isdigit() for c in segment)
    letters = sum(c.isalpha() for c in segment)
    return len(segment) >= _SHORT_KEY_CHARS and digits >= _SHORT_KEY_DIGITS and letters >= 1


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
