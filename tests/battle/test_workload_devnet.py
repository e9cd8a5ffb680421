"""The raw workload and subscribers against Lasso in-process on a real 3-node anvil devnet."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio

from battle.chaindata import ChainData, create_chain_data
from battle.events import ChaosEvent, Outcome, Recorder, Recording, SubscriptionKind
from battle.scenario import Arrival, Rate
from battle.slo import compute
from battle.workload import (
    Endpoint,
    WorkloadStats,
    make_log_traffic,
    run_requests,
    run_subscribers,
)
from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.devnet import Devnet, open_devnet
from tests.support.front import devnet_settings, open_lasso
from tests.support.proxied import relayed_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE = Rate(20, Arrival.CONSTANT)
DURATION_S = 3.0


@dataclass
class Rig:
    devnet: Devnet
    data: ChainData
    endpoint: Endpoint
    relay: TcpRelay | None


@asynccontextmanager
async def open_rig(*, relayed: bool) -> AsyncIterator[Rig]:
    async with open_devnet(nodes=3, block_time_s=1.0, port_base=0) as devnet:
        data = await create_chain_data(devnet)
        async with open_tcp_relay(devnet.nodes[0].port) as relay:
            settings = relayed_settings(devnet, relay) if relayed else devnet_settings(devnet)
            async with open_lasso(settings) as base:
                ws = base.replace("http://", "ws://")
                endpoint = Endpoint(f"{base}/rpc/devnet", f"{ws}/ws/rpc/devnet", "test")
                yield Rig(devnet, data, endpoint, relay if relayed else None)


async def run(rig: Rig, recorder: Recorder, seed: int) -> WorkloadStats:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_subscribers, rig.endpoint, recorder, DURATION_S + 0.5, rig.data)
        nursery.start_soon(make_log_traffic, rig.devnet, rig.data.emitter, DURATION_S + 0.5)
        await trio.sleep(0.25)  # the subscriptions are made before the first request
        rng = random.Random(seed)
        return await run_requests(rig.endpoint, recorder, RATE, DURATION_S, rig.data, rng)


def failures(recording: Recording) -> list[object]:
    return [
        r
        for r in recording.requests
        if r.outcome is not Outcome.RESULT
        and not (r.outcome is Outcome.JSONRPC_ERROR and r.error_expected)
    ]


async def test_a_healthy_gateway_answers_everything() -> None:
    recorder = Recorder()
    with trio.fail_after(40):
        async with open_rig(relayed=False) as rig:
            stats = await run(rig, recorder, seed=1)
    recording = recorder.recording()
    slos = compute(recording)
    assert failures(recording) == []
    assert slos.success_rate == 1.0
    assert slos.requests == stats.sent and stats.sent + stats.skipped == 60
    assert stats.sent >= 50  # a loaded box may drop a few late arrivals, never send extra
    assert slos.head_regressions == 0 and slos.read_your_head_misses in (0, None)
    assert slos.gaps == 0 and slos.duplicates == 0 and slos.id_mismatches == 0
    transports = Counter(r.transport for r in recording.requests)
    assert transports["http"] > 10 and transports["ws"] > 10
    http = [r for r in recording.requests if r.transport == "http"]
    # Lasso answers eth_chainId itself, and cache hits (lasso.cache) from memory
    served = [r for r in http if r.method != "eth_chainId" and r.cache != "hit"]
    assert served and all(r.provider in {"n0", "n1", "n2"} for r in served)
    assert any(r.error_expected for r in recording.requests)  # the reverter's revert
    kinds = Counter(s.kind for s in recording.subscriptions)
    assert kinds[SubscriptionKind.HEADS] >= 2 and kinds[SubscriptionKind.LOGS] >= 2
    assert recording.heads


async def test_a_provider_cut_mid_run_still_succeeds() -> None:
    recorder = Recorder()
    with trio.fail_after(40):
        async with open_rig(relayed=True) as rig, trio.open_nursery() as nursery:
            assert rig.relay is not None
            nursery.start_soon(run, rig, recorder, 2)
            await trio.sleep(DURATION_S / 2)
            rig.relay.cut()  # n0, the first choice, loses every connection
            recorder.record(ChaosEvent("cut", "n0", trio.current_time()))
    recording = recorder.recording()
    slos = compute(recording)
    assert slos.success_rate is not None and slos.success_rate >= 0.95, failures(recording)
    assert slos.failover_missed == 0
    assert slos.failover_latency_s is not None and slos.failover_latency_s < 1.0
    assert slos.head_regressions == 0 and slos.gaps == 0
    late = [r for r in recording.requests if r.sent_at > recording.requests[-1].sent_at - 1.0]
    assert {r.provider for r in late if r.transport == "http"} <= {"n1", "n2", None}
