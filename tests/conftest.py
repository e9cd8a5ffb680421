"""Shared fixtures: a gateway on fake nodes, driven in-process."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator

import pytest
from hypothesis import settings as hypothesis_settings

from lasso import redact
from lasso.config import ProviderConfig, Settings, parse_settings
from lasso.core.mask import Redactor
from lasso.daemon import open_gateway
from lasso.gateway import Gateway
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.support.fakes import FakeHttpTransport, FakeNode

# Tests are deterministic: the default Hypothesis profile derandomizes (the same examples on
# every run, no example database), so `make test` and CI cannot fail by luck. Hunting for new
# counterexamples is a deliberate act: `make explore` runs the property tests with
# HYPOTHESIS_PROFILE=explore, a new random seed each run; pin what it finds with @example.
hypothesis_settings.register_profile("default", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SETTINGS = """
[server]
max_body_bytes = 4096
max_batch = 5

[chains.testnet]
chain_id = 31337
block_time_ms = 1000
head_poll_ms = 0  # these tests count upstream calls exactly; head tracking is tested apart
aliases = ["local"]
providers = [
  { id = "p1", url = "http://p1.invalid", priority = 1 },
  { id = "p2", url = "http://p2.invalid", priority = 2 },
  { id = "p3", url = "https://user:secret@p3.invalid/v2/AbCdEf0123456789AbCdEf0123456789", priority = 3 },
]

[profiles.team.chains.teamnet]
chain_id = 5
head_poll_ms = 0
providers = [ { id = "t1", url = "http://t1.invalid" } ]
"""


class FakeFleet:
    """One FakeNode per (chain, provider id)."""

    def __init__(self) -> None:
        self.nodes: dict[str, FakeNode] = {}

    def transport(self, chain: str, provider: ProviderConfig) -> FakeHttpTransport:
        node = self.nodes.setdefault(
            provider.id, FakeNode(chain_id=31337 if chain == "testnet" else 5)
        )
        return FakeHttpTransport(node, provider.id)


@pytest.fixture(autouse=True)
def _no_secrets_carried_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts knowing no secrets: :mod:`lasso.redact` is process-wide, and every
    gateway a test opens teaches it its config's (a value masked in a later test's text)."""
    monkeypatch.setattr(redact, "_redactor", Redactor())


@pytest.fixture
def settings() -> Settings:
    return parse_settings(SETTINGS, env={})


@pytest.fixture
def fleet() -> FakeFleet:
    return FakeFleet()


@pytest.fixture
async def gateway(settings: Settings, fleet: FakeFleet) -> AsyncIterator[Gateway]:
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        yield gw


@pytest.fixture
def app(gateway: Gateway) -> LassoASGI:
    return LassoASGI(gateway, create_app(gateway))
