"""Per-request routing read from the ASGI scope: the route, overrides in headers and query."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lasso.gateway import Gateway, Target

if TYPE_CHECKING:
    from lasso.web.gate import Identity


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


def resolve_route(
    gateway: Gateway, scope: Mapping[str, Any], headers: dict[bytes, bytes], who: Identity
) -> Target:
    """The target of a request the gate identified; raises ``UnknownTarget``.

    The target's ``client`` is the gate's client key (API key name, else address),
    so the per-client filter bounds count against the same identity as the limits.
    """
    query = scope.get("query_string", b"")
    return gateway.resolve(who.route, who.path, *overrides(headers, query), client=who.client)
