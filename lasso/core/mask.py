"""Hiding secrets before text leaves the process: one implementation for every surface.

Two tools, both pure:

- :func:`mask_url` hides what may be a credential in one URL, keeping the scheme,
  host, port and ordinary path segments readable so an operator can still tell
  providers apart:

  - userinfo, user and password alike (a user name is often the key itself, as in
    ``https://KEY:@host``): ``https://user:pass@host`` -> ``https://***:***@host``,
    and a bare ``https://KEY@host`` -> ``https://***@host``;
  - every query value: ``?apikey=abc&x=1`` -> ``?apikey=***&x=***``; a fragment -> ``#***``;
  - path segments that look like keys (:func:`looks_like_key`: Alchemy ``/v2/<key>``,
    Infura ``/v3/<hex>``, QuickNode ``/<hex>/``, Ankr ``/eth/<hex>``, UUIDs): ``***``.
    ``/v3``, ``/ws``, ``/eth``, ``/rpc`` stay.

- :class:`Redactor` replaces known secret values (every part of a configured URL that
  :func:`mask_url` hides, header values, API keys; see
  :func:`lasso.config.secrets.secret_values`) wherever they appear in free text, and
  masks every URL in it. A known value is caught even where no URL surrounds it: a
  provider's 404 page echoing ``Cannot POST /v3/<key>``, an exception quoting a header.

Theory: masking by shape (:func:`mask_url`) protects URLs we have never seen; masking
by value (:class:`Redactor`) protects the secrets we were given, in any text. Neither
alone is enough: a short key in a path (``/rpc/abc``) does not look like a key, and a
key that a provider echoes without its URL has no shape to recognise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

__all__ = [
    "MASK",
    "MIN_SECRET_CHARS",
    "Redactor",
    "looks_like_key",
    "mask_url",
    "mask_urls",
    "url_secrets",
]

MASK = "***"
#: Known values shorter than this are not replaced in free text: a 2-character
#: "secret" would shred every log line. Such values are still masked by shape in URLs.
MIN_SECRET_CHARS = 6
_SHORT_SEGMENT_CHARS = 3
_LONG_KEY_CHARS = 20
_READABLE = re.compile(r"[a-z]+(?:[-_.][a-z]+)*(?:[-_.]?v?[0-9]{1,2})?")
#: Query parameters whose value is a credential whatever it looks like.
_SECRET_PARAM = re.compile(r"key|token|secret|auth|pass|sig|cred", re.IGNORECASE)
#: A URL inside free text: scheme, then anything up to whitespace or a quote/bracket,
#: not ending in punctuation (``at http://h/x: refused`` keeps its colon).
_URL_IN_TEXT = re.compile(
    r"\b(?:https?|wss?)://[^\s\"'<>`\\]*[^\s\"'<>`\\.,;:!?)\]}]", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """``url`` with anything that may be a credential replaced by ``***``; idempotent."""
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


def mask_urls(text: str) -> str:
    """``text`` with every http(s)/ws(s) URL in it masked (:func:`mask_url`)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def url_secrets(url: str) -> list[str]:
    """The credentials in ``url``, raw and percent-decoded: the values to look for in
    free text. Userinfo, key-like path segments, the fragment, and query values that
    are named like a credential (``apikey=``, ``token=``, ``dkey=``) or look like one;
    ``?network=mainnet`` is masked in the URL but not hunted for in every log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: list[str] = []
    userinfo, at, _hostport = parts.netloc.rpartition("@")
    if at:
        found += [userinfo, *userinfo.split(":", 1)]
    found += [s for s in parts.path.split("/") if looks_like_key(s)]
    for item in parts.query.split("&") if parts.query else ():
        name, eq, value = item.partition("=")
        value = value if eq else name
        if (eq and _SECRET_PARAM.search(name)) or looks_like_key(value):
            found.append(value)
    if parts.fragment:
        found.append(parts.fragment)
    return _with_decoded(found)


def _with_decoded(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [value] if unquote(value) == value else [value, unquote(value)]
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
    """True for a path segment that may be an API key or token.

    Readable, and kept: up to 3 characters (``v3``, ``ws``, ``eth``, ``C``), or lower-case
    words joined by ``-``, ``_`` or ``.`` with at most a 2-digit version at the end
    (``ethereum-mainnet``, ``ogrpc``, ``polygon-amoy``, ``rpc-v2``), under 20 characters.
    Everything else is a key: long tokens, anything with upper case (Alchemy's mixed-case
    keys), digits inside (hex, UUIDs), ``~``/``=``/``+`` (base64).
    """
    if len(segment) <= _SHORT_SEGMENT_CHARS:
        return False
    return len(segment) >= _LONG_KEY_CHARS or not _READABLE.fullmatch(segment)


class Redactor:
    """Replaces known secret values, and masks every URL, in free text.

    Values shorter than :data:`MIN_SECRET_CHARS` are ignored. The longest value
    wins where two overlap (one regex alternation, longest first), so a header
    ``Bearer KEY`` and the bare ``KEY`` both vanish whole.
    """

    __slots__ = ("_pattern", "_pattern_bytes", "secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        kept = {s for s in secrets if len(s) >= MIN_SECRET_CHARS and s != MASK}
        self.secrets: frozenset[str] = frozenset(kept)
        ordered = sorted(kept, key=lambda s: (-len(s), s))
        alternation = "|".join(re.escape(s) for s in ordered)
        self._pattern = re.compile(alternation) if ordered else None
        self._pattern_bytes = re.compile(alternation.encode()) if ordered else None

    def with_secrets(self, more: Iterable[str]) -> Redactor:
        """A redactor knowing these secrets as well (a secret once known stays one)."""
        return Redactor(self.secrets | set(more))

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***`` and every URL masked."""
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return mask_urls(text)

    def scrub_known(self, data: bytes) -> bytes:
        """``data`` with every known secret replaced; nothing else changes.

        For bytes passed through from a node (its own JSON-RPC error object): they stay
        byte for byte what the node said unless they quote one of our secrets.
        """
        if self._pattern_bytes is None:
            return data
        return self._pattern_bytes.sub(MASK.encode(), data)
