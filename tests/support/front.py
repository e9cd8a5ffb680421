"""Lasso's real front end on a loopback socket, for tests: ``lasso.daemon.serve`` on port 0.

One place builds it, so every test that talks to Lasso over real sockets does so the
same way (hypercorn's protocol code under Lasso's own accept loop, the gateway, the
subscription hub) and stops it the same way.
"""

from __future__ import annotations

from battle.replay import serve_lasso
from lasso.config import Settings, parse_settings
from lasso.devnet import Devnet

#: Serve ``settings`` until the block exits; yield the base URL (``http://127.0.0.1:N``).
#: The battle harness's replay serves Lasso the same way (battle may not import tests/).
open_lasso = serve_lasso


def devnet_settings(devnet: Devnet) -> Settings:
    """One chain ``devnet`` with every node as a provider (HTTP and WS), priority = index."""
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", priority = {n.index} }}'
        for n in devnet.nodes
    )
    return parse_settings(
        f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n{providers}\n]\n",
        env={},
    )
