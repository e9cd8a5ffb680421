"""``lasso up``: the config's devnet chain follows the devnet's actual ports (pure part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lasso.config import Settings, load_settings, parse_settings
from lasso.devnet.follow import DevnetMismatch, check_devnet_fits, follow_devnet
from lasso.reload import ReloadState, Stamp, attempt_reload

SHIPPED = Path(__file__).resolve().parents[2] / "settings.toml"


def urls(settings: Settings, chain: str = "devnet") -> list[tuple[str, str | None]]:
    return [(p.url, p.ws_url) for p in settings.default_profile.chains[chain].providers]


def test_the_shipped_devnet_chain_follows_the_nodes() -> None:
    shipped = load_settings(SHIPPED, env={})
    moved = follow_devnet(shipped, [9001, 9002, 9003])
    assert urls(moved) == [
        ("http://127.0.0.1:9001", "ws://127.0.0.1:9001"),
        ("http://127.0.0.1:9002", "ws://127.0.0.1:9002"),
        ("http://127.0.0.1:9003", "ws://127.0.0.1:9003"),
    ]
    devnet = moved.default_profile.resolve_chain("31337")
    assert devnet is not None and devnet.provider("devnet-2") is not None
    assert devnet.provider("devnet-2").url == "http://127.0.0.1:9002"  # type: ignore[union-attr]
    for chain in shipped.default_profile.chains:  # every other chain untouched
        if chain != "devnet":
            assert urls(moved, chain) == urls(shipped, chain)
    assert follow_devnet(shipped, [8545, 8546, 8547]) == shipped


def test_only_loopback_default_ports_of_the_devnet_chain_move() -> None:
    settings = parse_settings(
        """
        [chains.devnet]
        chain_id = 31337
        providers = [
          { id = "a", url = "http://localhost:8546/", ws_url = "ws://[::1]:8545" },
          { id = "b", url = "http://10.0.0.5:8545" },
          { id = "c", url = "http://127.0.0.1:9999" },
          { id = "d", url = "http://user:pw@127.0.0.1:8545/x?y=1" },
        ]
        [chains.local]
        chain_id = 1
        providers = [{ id = "geth", url = "http://127.0.0.1:8545" }]
        """,
        env={},
    )
    moved = follow_devnet(settings, [7000, 7001])
    assert urls(moved) == [
        ("http://localhost:7001/", "ws://[::1]:7000"),
        ("http://10.0.0.5:8545", None),
        ("http://127.0.0.1:9999", None),
        ("http://user:pw@127.0.0.1:7000/x?y=1", None),
    ]
    assert urls(moved, "local") == [("http://127.0.0.1:8545", None)]


def test_a_provider_naming_a_node_that_does_not_run_is_one_clear_error() -> None:
    shipped = load_settings(SHIPPED, env={})
    check_devnet_fits(shipped, 3)
    with pytest.raises(DevnetMismatch) as info:
        check_devnet_fits(shipped, 2)
    assert str(info.value) == (
        "chain 'devnet' provider 'devnet-3' is devnet node 2 (http://127.0.0.1:8547), "
        "but the devnet runs 2 nodes: use --nodes 3 or remove the provider"
    )
    with pytest.raises(DevnetMismatch):
        follow_devnet(shipped, [9001])


def test_a_reload_follows_too_and_a_mismatch_rejects_it(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(SHIPPED.read_text())
    ports = [9001, 9002, 9003]
    running = follow_devnet(load_settings(path, env={}), ports)
    state = ReloadState(running, source=str(path), adjust=lambda s: follow_devnet(s, ports))
    same = attempt_reload(path, state, Stamp.now(0.0), env={})
    assert same.decision == "unchanged"  # not "providers moved back to 8545"
    path.write_text(SHIPPED.read_text().replace("8547", "8548"))
    mismatch = attempt_reload(path, state, Stamp.now(1.0), env={})
    assert mismatch.decision == "rejected"
    assert "devnet node 3" in mismatch.problems[0].message
    assert state.settings is running
