"""The start-up banner names every endpoint a client or an operator needs."""

from __future__ import annotations

from lasso.config import parse_settings
from lasso.daemon import _banner

SETTINGS = """
[chains.devnet]
chain_id = 31337
providers = [{ id = "a", url = "http://127.0.0.1:1" }]

[profiles.team.chains.teamnet]
chain_id = 5
providers = [{ id = "b", url = "http://127.0.0.1:2" }]
"""


def test_the_banner_lists_json_rpc_websocket_health_readiness_metrics_and_dashboard() -> None:
    text = _banner(parse_settings(SETTINGS, env={}), ["http://127.0.0.1:4000"], reloadable=True)
    for line in (
        "JSON-RPC   http://127.0.0.1:4000/rpc/devnet",
        "WebSocket  ws://127.0.0.1:4000/ws/rpc/devnet",
        "JSON-RPC   http://127.0.0.1:4000/rpc/profile/team/teamnet",
        "WebSocket  ws://127.0.0.1:4000/ws/rpc/profile/team/teamnet",
        "health     http://127.0.0.1:4000/health  (readiness: http://127.0.0.1:4000/health/ready)",
        "metrics    http://127.0.0.1:4000/metrics",
        "dashboard  http://127.0.0.1:4000/dashboard",
        "SIGHUP (lasso reload)",
    ):
        assert line in text, line


def test_the_banner_leaves_out_metrics_that_are_turned_off() -> None:
    settings = parse_settings(SETTINGS + "\n[metrics]\nenabled = false\n", env={})
    text = _banner(settings, ["http://127.0.0.1:4000"])
    assert "/metrics" not in text
    assert "dashboard  http://127.0.0.1:4000/dashboard" in text
