"""Who a client is: its address, its API key, and the client key limits count against.

The **client key** is ``key:<name>`` when the request carries a valid API key
(the configured key's name, never the key), else ``ip:<address>``. Rate limits,
the per-client concurrency caps and the per-client filter bounds all count
against it.

The **address** is the socket peer's, except behind a trusted proxy. When the
peer is in ``[server] trusted_proxies``, ``X-Forwarded-For`` is read from the
right: each entry was appended by the hop to its right, so entries are believed
only while that hop is trusted, and the client is the right-most address that is
not a trusted proxy. A client that is not behind a trusted proxy cannot move its
own key by sending the header: it is ignored. IPv6 clients are keyed by their
/64 (one host commonly holds a whole /64, so a per-address limit would be no
limit at all); IPv4-mapped IPv6 addresses count as the IPv4 address.

The API key is read from the ``X-Lasso-Api-Key`` header, else the ``api_key``
query parameter, else the route's extra last path segment
(:func:`lasso.core.routes.split_path_key`); the first one present is the one
checked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from lasso.web.params import query_value

__all__ = [
    "API_KEY_HEADER",
    "TrustedProxies",
    "client_address",
    "client_ip_key",
    "ip_key",
    "presented_key",
    "trusted_proxies",
]

API_KEY_HEADER = b"x-lasso-api-key"
_XFF = b"x-forwarded-for"
#: Forwarded-for hops read at most: a longer chain is someone's game, not a network.
_MAX_HOPS = 32

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The ``[server] trusted_proxies`` networks, for membership tests."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in cidrs
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


@lru_cache(maxsize=8)
def trusted_proxies(cidrs: tuple[str, ...]) -> TrustedProxies:
    """Parsed once per settings value (the tuple is hashable and reloads replace it)."""
    return TrustedProxies(cidrs)


def _parse(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[v6]:port", as some proxies write it
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """Every X-Forwarded-For entry, in order, across repeated headers."""
    entries: list[str] = []
    for name, value in headers:
        if name == _XFF:
            entries.extend(value.decode("latin-1").split(","))
    return entries[-_MAX_HOPS:]


def client_address(scope: Mapping[str, Any], trusted: TrustedProxies) -> Address | None:
    """The client's address: the peer, or the forwarded-for client behind trusted proxies."""
    client = scope.get("client")
    peer = _parse(str(client[0])) if isinstance(client, list | tuple) and client else None
    if peer is None or not trusted or peer not in trusted:
        return peer
    current = peer
    for entry in reversed(_forwarded(scope.get("headers", ()))):
        hop = _parse(entry)
        if hop is None:  # a trusted proxy wrote something we cannot read: stop at it
            return current
        current = hop
        if hop not in trusted:
            return hop
    return current


def ip_key(address: Address | None) -> str:
    """``ip:<address>`` (IPv6 by its /64), or ``ip:unknown``."""
    if address is None:
        return "ip:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((int(address) >> 64 << 64, 64))
        return f"ip:{network.compressed}"
    return f"ip:{address.compressed}"


@lru_cache(maxsize=4096)
def _peer_key(host: str) -> str:
    return ip_key(_parse(host))


@lru_cache(maxsize=4096)
def _trusts(cidrs: tuple[str, ...], host: str) -> bool:
    address = _parse(host)
    return address is not None and address in trusted_proxies(cidrs)


def client_ip_key(scope: Mapping[str, Any], cidrs: tuple[str, ...]) -> str:
    """``ip_key(client_address(...))``, with the common cases (no proxy configured, a
    peer that is not a proxy) answered from small caches: this runs for every request."""
    client = scope.get("client")
    host = str(client[0]) if isinstance(client, list | tuple) and client else ""
    if not cidrs or not _trusts(cidrs, host):
        return _peer_key(host)
    return ip_key(client_address(scope, trusted_proxies(cidrs)))


def presented_key(
    headers: Sequence[tuple[bytes, bytes]], query: bytes, path_key: str | None
) -> str | None:
    """The API key the request presents: header, else query, else path segment."""
    for name, value in headers:
        if name == API_KEY_HEADER:
            return value.decode("latin-1").strip()
    from_query = query_value(query, b"api_key")
    if from_query is not None:
        return unquote(from_query)
    return path_key
