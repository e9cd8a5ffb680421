"""``lasso up``: point the config's devnet chain at the devnet actually running.

The shipped ``settings.toml`` names the devnet's nodes at fixed ports
(``http://127.0.0.1:8545`` + i, node i of a devnet on the default port base).
``lasso up --port-base N`` (or ``0``, free ports) starts the nodes elsewhere; left
alone, every call to those providers would fail. So a provider URL that names
node i at the default ports is rewritten to node i's actual port, when:

* its chain has the devnet's chain id (a local node of another chain at 8545
  is not the devnet and is left alone);
* its host is loopback (``127.0.0.1``, ``localhost``, ``::1``);
* its port is ``DEFAULT_PORT_BASE + i`` for i below ``MAX_NODES``.

A provider that names a node the devnet does not have (``devnet-3`` at 8547
with ``--nodes 2``) is a mismatch: :class:`DevnetMismatch`, one line, and
``lasso up`` exits 2 before starting anything. A reload applies the same
rewrite to the re-read file (``ReloadState.adjust``), and a mismatch there
rejects the reload.

Pure: settings in, settings out; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import msgspec

from lasso.config import Settings
from lasso.config.schema import ProviderConfig
from lasso.config.secrets import mask_url

__all__ = ["DEFAULT_PORT_BASE", "DevnetMismatch", "check_devnet_fits", "follow_devnet"]

DEFAULT_PORT_BASE: Final = 8545
#: Ports DEFAULT_PORT_BASE .. + MAX_NODES - 1 name devnet nodes in a config.
MAX_NODES: Final = 64
DEVNET_CHAIN_ID: Final = 31337
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class DevnetMismatch(ValueError):
    """The config names a devnet node that ``lasso up`` does not run."""


def node_index(url: str | None) -> int | None:
    """Which default-port devnet node ``url`` names, if any."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.hostname not in _LOOPBACK or port is None:
        return None
    index = port - DEFAULT_PORT_BASE
    return index if 0 <= index < MAX_NODES else None


def _devnet_providers(
    settings: Settings, chain_id: int
) -> Iterator[tuple[str, str, ProviderConfig]]:
    for slug, profile in settings.profiles.items():
        for name, chain in profile.chains.items():
            if chain.chain_id == chain_id:
                for provider in chain.providers:
                    yield slug, name, provider


def check_devnet_fits(settings: Settings, nodes: int, chain_id: int = DEVNET_CHAIN_ID) -> None:
    """Raise :class:`DevnetMismatch` if a devnet provider names a node beyond ``nodes``."""
    for slug, name, provider in _devnet_providers(settings, chain_id):
        for url in (provider.url, provider.ws_url):
            index = node_index(url)
            if url is not None and index is not None and index >= nodes:
                where = name if slug == "default" else f"{slug}/{name}"
                runs = f"{nodes} node{'s' if nodes != 1 else ''}"
                raise DevnetMismatch(
                    f"chain {where!r} provider {provider.id!r} is devnet node {index} "
                    f"({mask_url(url)}), but the devnet runs {runs}: "
                    f"use --nodes {index + 1} or remove the provider"
                )


def follow_devnet(
    settings: Settings, ports: Sequence[int], chain_id: int = DEVNET_CHAIN_ID
) -> Settings:
    """``settings`` with every default-port devnet URL moved to the node's actual port."""
    check_devnet_fits(settings, len(ports), chain_id)
    profiles = {}
    for slug, profile in settings.profiles.items():
        chains = {}
        for name, chain in profile.chains.items():
            if chain.chain_id == chain_id:
                providers = tuple(_moved(p, ports) for p in chain.providers)
                if providers != chain.providers:
                    chain = msgspec.structs.replace(chain, providers=providers)
            chains[name] = chain
        profiles[slug] = msgspec.structs.replace(profile, chains=chains)
    return msgspec.structs.replace(settings, profiles=profiles)


def _moved(provider: ProviderConfig, ports: Sequence[int]) -> ProviderConfig:
    url, ws_url = _port(provider.url, ports), _port(provider.ws_url, ports)
    if (url, ws_url) == (provider.url, provider.ws_url):
        return provider
    return msgspec.structs.replace(provider, url=url, ws_url=ws_url)


def _port(url: str | None, ports: Sequence[int]) -> str | None:
    index = node_index(url)
    if url is None or index is None:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit(":", 1)[0]  # keeps userinfo and [::1] brackets
    return urlunsplit(parts._replace(netloc=f"{host}:{ports[index]}"))
