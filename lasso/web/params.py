"""Per-request overrides read from headers and the query string."""

from __future__ import annotations


def query_value(query: bytes, key: bytes) -> str | None:
    if key + b"=" not in query:
        return None
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == key:
            return value.decode("latin-1")
    return None


def overrides(headers: dict[bytes, bytes], query: bytes) -> tuple[str | None, str | None]:
    """The provider pin and the transport preference a request asks for."""
    provider = headers.get(b"x-lasso-provider", b"").decode("latin-1") or None
    transport = query_value(query, b"transport")
    if transport is None:
        transport = headers.get(b"x-lasso-transport", b"").decode("latin-1") or None
    return provider, None if transport is None else transport.lower()
