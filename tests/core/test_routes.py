from __future__ import annotations

import pytest

from lasso.core.router import Strategy
from lasso.core.routes import RouteSpec, parse_rpc_path

CASES = [
    ("/rpc/devnet", RouteSpec(chain="devnet")),
    ("/rpc/1", RouteSpec(chain="1")),
    ("/rpc/devnet/", RouteSpec(chain="devnet")),
    ("/rpc/fastest/devnet", RouteSpec(chain="devnet", strategy=Strategy.FASTEST)),
    ("/rpc/round-robin/eth", RouteSpec(chain="eth", strategy=Strategy.ROUND_ROBIN)),
    ("/rpc/provider/devnet-2/devnet", RouteSpec(chain="devnet", provider="devnet-2")),
    ("/rpc/profile/team-a/devnet", RouteSpec(chain="devnet", profile="team-a")),
    (
        "/rpc/profile/team-a/priority/devnet",
        RouteSpec(chain="devnet", profile="team-a", strategy=Strategy.PRIORITY),
    ),
    (
        "/rpc/profile/p/provider/x/devnet",
        RouteSpec(chain="devnet", profile="p", provider="x"),
    ),
    ("/rpc/", None),
    ("/rpc/slowest/devnet", None),
    ("/rpc/a/b/c/d", None),
    ("/rpc//devnet", None),
    ("/other/devnet", None),
]


@pytest.mark.parametrize(("path", "expected"), CASES)
def test_parse_rpc_path(path: str, expected: RouteSpec | None) -> None:
    assert parse_rpc_path(path) == expected


def test_ws_prefix() -> None:
    assert parse_rpc_path("/ws/rpc/fastest/devnet", "/ws/rpc/") == RouteSpec(
        chain="devnet", strategy=Strategy.FASTEST
    )
