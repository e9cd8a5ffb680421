"""Client identity: the peer, X-Forwarded-For only through trusted proxies, the API key forms."""

from __future__ import annotations

from typing import Any

import pytest

from lasso.web.identity import (
    TrustedProxies,
    client_address,
    client_ip_key,
    ip_key,
    presented_key,
)

TRUSTED = TrustedProxies(["127.0.0.0/8", "10.0.0.0/8", "fd00::/8"])


def scope(peer: str, *xff: str) -> dict[str, Any]:
    return {"client": (peer, 5000), "headers": [(b"x-forwarded-for", v.encode()) for v in xff]}


def key_of(peer: str, *xff: str, trusted: TrustedProxies = TRUSTED) -> str:
    return ip_key(client_address(scope(peer, *xff), trusted))


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() -> None:
    none = TrustedProxies([])
    assert key_of("203.0.113.7", "198.51.100.1", trusted=none) == "ip:203.0.113.7"
    assert key_of("127.0.0.1", "198.51.100.1", trusted=none) == "ip:127.0.0.1"


def test_a_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    assert key_of("203.0.113.7", "10.0.0.1") == "ip:203.0.113.7"
    assert key_of("203.0.113.7", "198.51.100.1, 127.0.0.1") == "ip:203.0.113.7"


@pytest.mark.parametrize(
    ("xff", "client"),
    [
        (["198.51.100.1"], "ip:198.51.100.1"),
        # The client wrote its own lie on the left; the proxy appended what it saw.
        (["6.6.6.6, 198.51.100.1"], "ip:198.51.100.1"),
        # Two trusted hops: the right-most address that is not a proxy.
        (["6.6.6.6, 198.51.100.1, 10.1.2.3"], "ip:198.51.100.1"),
        (["6.6.6.6", "198.51.100.1, 10.1.2.3"], "ip:198.51.100.1"),  # repeated headers
        (["198.51.100.1:4711"], "ip:198.51.100.1"),  # a port some proxies add
        (["[2001:db8::1]:4711"], "ip:2001:db8::/64"),
        (["10.1.2.3, 127.0.0.5"], "ip:10.1.2.3"),  # all trusted: the farthest one
        (["garbage, 10.1.2.3"], "ip:10.1.2.3"),  # unreadable: stop at the last good hop
        ([], "ip:127.0.0.1"),  # no header: the peer
    ],
)
def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(
    xff: list[str], client: str
) -> None:
    assert key_of("127.0.0.1", *xff) == client


def test_addresses_are_normalised_and_ipv6_counts_by_its_64() -> None:
    assert (
        key_of("2001:db8:0:1:aaaa::1") == key_of("2001:db8:0:1:bbbb::2") == "ip:2001:db8:0:1::/64"
    )
    assert key_of("::ffff:192.0.2.1") == "ip:192.0.2.1"
    assert ip_key(None) == "ip:unknown"
    assert ip_key(client_address({}, TRUSTED)) == "ip:unknown"


def test_the_key_is_read_from_the_header_then_the_query_then_the_path() -> None:
    header = [(b"x-lasso-api-key", b" from-header ")]
    assert presented_key(header, b"api_key=from-query", "from-path") == "from-header"
    assert presented_key([], b"x=1&api_key=from%2Fquery", "from-path") == "from/query"
    assert presented_key([], b"", "from-path") == "from-path"
    assert presented_key([], b"", None) is None


@pytest.mark.parametrize(
    ("peer", "xff", "cidrs"),
    [
        ("203.0.113.7", ["10.0.0.1"], ()),
        ("203.0.113.7", ["10.0.0.1"], ("127.0.0.0/8",)),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], ("127.0.0.0/8",)),
        ("127.0.0.1", [], ("127.0.0.0/8",)),
        ("2001:db8::1", [], ()),
        ("nonsense", [], ()),
    ],
)
def test_the_cached_fast_path_agrees_with_the_full_walk(
    peer: str, xff: list[str], cidrs: tuple[str, ...]
) -> None:
    full = ip_key(client_address(scope(peer, *xff), TrustedProxies(cidrs)))
    assert client_ip_key(scope(peer, *xff), cidrs) == full
