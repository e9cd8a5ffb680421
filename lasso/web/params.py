"""Per-request routing read from the ASGI scope: the route, overrides in headers and query."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lasso.core.routes import parse_rpc_path
from lasso.errors import UnknownTarget
from lasso.gateway import Gateway, Target


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


def resolve_scope(
    gateway: Gateway, scope: Mapping[str, Any], headers: dict[bytes, bytes], prefix: str
) -> Target:
    """The target a request's path and overrides name; raises ``UnknownTarget``."""
    path: str = scope["path"]
    route = parse_rpc_path(path, prefix)
    if route is None:
        raise UnknownTarget(f"No such route: {path}", http_status=404)
    query = scope.get("query_string", b"")
    return gateway.resolve(route, path, *overrides(headers, query), client=remote_address(scope))


def remote_address(scope: Mapping[str, Any]) -> str | None:
    """The client's host as the server saw it (ASGI ``client``), or None if unknown."""
    client = scope.get("client")
    if isinstance(client, list | tuple) and client:
        return str(client[0])
    return None
