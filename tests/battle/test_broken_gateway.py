"""A deliberately broken gateway fails the battle; the same battle on a sound one passes.

The real runner (:func:`battle.run.main`, every real part: the devnet target of four anvil
nodes, a ``lasso serve`` subprocess, the raw, web3.py and subscriber workloads, the SLOs, the
report) runs the ``rate-limited`` scenario (HTTP 429 with Retry-After on one, then two of the
four providers) twice with the same seed: as configured, it meets every threshold (exit 0);
with ``--break-failover`` (``[routing] max_attempts = 1``, no hedge: an attempt that meets a
429 is the client's answer) it breaches (exit 1) on the success rate (measured: 97.5-98.3 %
against the 99.5 % threshold, over 3 seeds; the sound gateway: 100 %).

Why not ``provider-killed``: a SIGKILLed node drops its WebSocket at once, the gateway marks it
down before routing many requests there, and only 0-2 requests of ~400 meet it, so a gateway
without failover measured 99.75 % there once, within its threshold: not a reliable witness.
About 35 s.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from battle.results import BattleRun
from battle.run import main

SCENARIO = "rate-limited"


def battle(out: Path, *extra: str) -> tuple[int, BattleRun]:
    argv = ["--target", "devnet", "--seed", "11", "--scenario", SCENARIO, "--no-fuzz"]
    code = main([*argv, "--out", str(out), *extra])
    run = msgspec.json.decode((out / "report.json").read_bytes(), type=BattleRun)
    return code, run


@pytest.mark.slow
@pytest.mark.integration
def test_a_broken_gateway_fails_the_battle_a_sound_one_passes(tmp_path: Path) -> None:
    code, sound = battle(tmp_path / "sound")
    (result,) = sound.scenarios
    assert result.name == SCENARIO and result.skipped is None
    assert code == 0, [b.message for b in result.breaches]
    assert sound.passed and result.slos is not None and result.slos.requests > 100

    code, broken = battle(tmp_path / "broken", "--break-failover")
    (result,) = broken.scenarios
    breached = {b.threshold.slo for b in result.breaches}
    assert code == 1 and not broken.passed
    assert "success_rate" in breached, [b.message for b in result.breaches]
    assert "--break-failover" in broken.provenance.command
    assert "max_attempts = 1" in broken.provenance.config_masked
    for out in ("sound", "broken"):
        assert {p.name for p in (tmp_path / out).iterdir()} >= {"report.json", "report.html"}
