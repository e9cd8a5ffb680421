"""What one battle run produced, as the report (:mod:`battle.report`) reads it.

All frozen msgspec Structs, so ``report.json`` is ``msgspec.json.encode(BattleRun)`` and
round-trips. URLs in here are already masked (:func:`battle.results.mask_url`, which is
:func:`lasso.core.mask.mask_url`: the report hides exactly what the gateway hides).
"""

from __future__ import annotations

import msgspec

from battle.events import Recording
from battle.slo import Slos
from battle.thresholds import Breach, Threshold
from lasso.core.mask import mask_url as mask_url  # re-exported: one implementation for both


class ProviderInfo(msgspec.Struct, frozen=True):
    id: str
    url: str  # masked
    ws_url: str | None = None  # masked
    role: str = ""  # "full", "pruned (keeps 16)", "oracle", ...


class Provenance(msgspec.Struct, frozen=True):
    lasso_version: str
    git_commit: str | None
    target: str  # "devnet", "public", "config"
    chain: str
    config_path: str
    config_masked: str  # the settings text the gateway ran, secrets masked
    seed: int
    started_at_utc: str  # ISO 8601
    python: str
    anvil_version: str | None
    providers: tuple[ProviderInfo, ...]
    command: str  # how to run this battle again


class FuzzFailure(msgspec.Struct, frozen=True):
    rule: str
    reason: str
    request: str  # the shrunk request body
    node_answer: str
    lasso_answer: str
    saved_as: str  # path of the saved example
    replay: str  # the one command that replays it


class FuzzResult(msgspec.Struct, frozen=True):
    seed: int
    examples: int
    methods: int  # distinct methods drawn
    failures: tuple[FuzzFailure, ...]
    duration_s: float
    stateful_steps: int = 0
    stateful_failures: tuple[str, ...] = ()
    skipped: str | None = None


class ScenarioResult(msgspec.Struct, frozen=True):
    name: str
    summary: str
    duration_s: float
    rps: float
    arrival: str
    thresholds: tuple[Threshold, ...]
    slos: Slos | None
    breaches: tuple[Breach, ...]
    recording: Recording | None
    skipped: str | None = None  # why it did not run on this target

    @property
    def passed(self) -> bool:
        return self.skipped is not None or not self.breaches


class BattleRun(msgspec.Struct, frozen=True):
    provenance: Provenance
    scenarios: tuple[ScenarioResult, ...]
    fuzz: FuzzResult | None
    duration_s: float
    quick: bool

    @property
    def passed(self) -> bool:
        fuzz_ok = self.fuzz is None or not (self.fuzz.failures or self.fuzz.stateful_failures)
        return fuzz_ok and all(s.passed for s in self.scenarios)
