"""CORS decisions: which browser origins may read the gateway's answers, and what to say.

Theory of operation (the Fetch standard's CORS protocol, the server's half):

* A browser script on another origin sends ``Origin`` with its request. For a
  "simple" request it sends the request at once and shows the script the
  answer only if the response names the origin in
  ``Access-Control-Allow-Origin``. A JSON-RPC POST (``content-type:
  application/json``) or any custom header is not simple: the browser first
  sends a *preflight*, ``OPTIONS`` with ``Access-Control-Request-Method``, and
  sends the real request only if the preflight answer allows it.
* An allowed origin's preflight gets 204 with the allowed methods, headers and
  ``Max-Age``; its real responses (errors included: a 429 or a 401 the script
  cannot read is useless to it) get ``Allow-Origin`` and ``Expose-Headers``.
* A disallowed origin gets no CORS header at all; its preflight gets 403 (the
  browser would block it either way; the status tells a person reading the
  network tab why). CORS is not access control: a non-browser client ignores
  it. Use ``[auth]`` keys for that.
* ``"*"`` in ``allow_origins`` allows every origin; without credentials the
  answer is the literal ``*`` (cacheable by anyone), with credentials the
  origin is echoed (the standard forbids ``*`` with credentials). An echoed
  origin always comes with ``Vary: Origin``, so a shared cache keeps answers
  for different origins apart.

Pure: the header tuples are computed once per configuration
(:class:`CorsPolicy`), and each request's decision is a set lookup and a list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["ALLOWED_METHODS", "CorsPolicy", "Headers"]

Headers = list[tuple[bytes, bytes]]

ALLOWED_METHODS: Final = b"POST, GET, OPTIONS"
_WILDCARD: Final = "*"
_PRIVATE_NETWORK: Final = (b"access-control-allow-private-network", b"true")


class CorsPolicy:
    """The precomputed answers for one ``[cors]`` configuration."""

    def __init__(
        self,
        allow_origins: Iterable[str],
        *,
        allow_headers: Iterable[str],
        expose_headers: Iterable[str],
        max_age_s: int,
        allow_credentials: bool,
    ) -> None:
        origins = {o.lower() for o in allow_origins}
        self.enabled = bool(origins)
        self.any_origin = _WILDCARD in origins
        self._origins = frozenset(o.encode("latin-1") for o in origins - {_WILDCARD})
        credentials = [(b"access-control-allow-credentials", b"true")] if allow_credentials else []
        # Without credentials "*" is a fixed answer; otherwise the origin is echoed.
        self._fixed: Headers | None = (
            [(b"access-control-allow-origin", b"*")]
            if self.any_origin and not allow_credentials
            else None
        )
        expose = ", ".join(h.lower() for h in expose_headers).encode("latin-1")
        self._response: Headers = [
            *([(b"access-control-expose-headers", expose)] if expose else []),
            *credentials,
        ]
        self._preflight: Headers = [
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-allow-headers", ", ".join(h.lower() for h in allow_headers).encode()),
            (b"access-control-max-age", b"%d" % max_age_s),
            *credentials,
        ]
        self._refused: Headers = [] if self._fixed is not None else [(b"vary", b"origin")]

    def allows(self, origin: bytes) -> bool:
        return self.any_origin or origin.lower() in self._origins

    def _allow_origin(self, origin: bytes) -> Headers:
        if self._fixed is not None:
            return self._fixed
        return [(b"access-control-allow-origin", origin), (b"vary", b"origin")]

    def response_headers(self, origin: bytes) -> Headers:
        """Headers to add to a response to a request from ``origin``."""
        if not self.allows(origin):
            return self._refused
        return [*self._allow_origin(origin), *self._response]

    def preflight_headers(self, origin: bytes, *, private_network: bool = False) -> Headers | None:
        """A preflight's 204 headers, or None when ``origin`` is not allowed (403).

        ``private_network``: the preflight asked ``Access-Control-Request-Private-Network``
        (Chromium's Private Network Access: a public page calling a gateway on loopback or
        a private address, Lasso's default ``127.0.0.1``); an allowed origin is told yes."""
        if not self.allows(origin):
            return None
        extra = [_PRIVATE_NETWORK] if private_network else []
        return [*self._allow_origin(origin), *self._preflight, *extra]
