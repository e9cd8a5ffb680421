"""The gateway's URL grammar, parsed without any web framework.

    /rpc/{chain}
    /rpc/{strategy}/{chain}            strategy: fastest | load-balanced | ...
    /rpc/provider/{provider_id}/{chain}
    /rpc/profile/{slug}/<any of the above>

and the same under ``/ws/rpc``. ``{chain}`` is a chain name, an alias or a
decimal chain id; resolving it is the gateway's job, not the parser's.

With ``[auth]`` on, a client that can only take a URL may append its API key
as one more segment: ``/rpc/{chain}/{key}``, ``/rpc/fastest/{chain}/{key}``,
``/rpc/provider/{id}/{chain}/{key}``, ``/rpc/profile/{slug}/.../{key}``
(:func:`split_path_key`). This is unambiguous: a path that is a route as it
stands never has its last segment taken as a key, and a route plus one segment
is never itself a route, because no chain may be named like a route word
(``fastest``, ``provider``, ``profile``...).
"""

from __future__ import annotations

import msgspec

from lasso.core.router import STRATEGY_NAMES, Strategy


class RouteSpec(msgspec.Struct, frozen=True):
    chain: str
    profile: str | None = None
    strategy: Strategy | None = None
    provider: str | None = None


def parse_rpc_path(path: str, prefix: str = "/rpc/") -> RouteSpec | None:
    """Parse ``path`` (which must start with ``prefix``); None if it is not a route."""
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix) :].rstrip("/").split("/")
    profile = None
    if len(parts) >= 3 and parts[0] == "profile":
        profile, parts = parts[1], parts[2:]
    if any(not p for p in parts):
        return None
    if len(parts) == 1:
        return RouteSpec(chain=parts[0], profile=profile)
    if len(parts) == 2 and parts[0] in STRATEGY_NAMES:
        return RouteSpec(chain=parts[1], profile=profile, strategy=Strategy(parts[0]))
    if len(parts) == 3 and parts[0] == "provider":
        return RouteSpec(chain=parts[2], profile=profile, provider=parts[1])
    return None


def split_path_key(path: str, prefix: str = "/rpc/") -> tuple[RouteSpec, str, str | None] | None:
    """The route, the route's own path and the API key in its last segment, if any.

    A path that parses as a route has no key: ``(route, path, None)``. Otherwise,
    if the path without its last segment is a route, that segment is the key.
    None when neither is a route.
    """
    route = parse_rpc_path(path, prefix)
    if route is not None:
        return route, path, None
    stem, slash, key = path.rstrip("/").rpartition("/")
    if not slash or not key or len(stem) < len(prefix.rstrip("/")):
        return None
    route = parse_rpc_path(stem, prefix)
    if route is None:
        return None
    return route, stem, key
