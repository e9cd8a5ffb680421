"""A chaos scenario: a workload, faults applied on a timeline, and the SLO thresholds it must meet.

The runner (:mod:`battle.run`) starts a fresh gateway for each scenario, runs the workload
(raw HTTP and WebSocket clients from :mod:`battle.workload`, web3.py from
:mod:`battle.web3load`, subscribers) for ``duration_s`` while ``chaos`` runs beside it, then
computes :class:`battle.slo.Slos` from the recording and evaluates ``thresholds``.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from battle.control import Chaos, Need
from battle.thresholds import Threshold


class Arrival(enum.Enum):
    CONSTANT = "constant"  # one request every 1/rps seconds
    POISSON = "poisson"  # exponential gaps with mean 1/rps (seeded)


@dataclass(frozen=True)
class Rate:
    rps: float
    arrival: Arrival = Arrival.POISSON


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str  # one line for the report: what is done to whom
    duration_s: float
    chaos: Callable[[Chaos], Awaitable[None]]  # starts with the workload; returns by duration_s
    thresholds: tuple[Threshold, ...]
    rate: Rate = Rate(20.0)
    needs: frozenset[Need] = field(default_factory=frozenset)
    quick: bool = False  # part of `make battle-quick`
    web3: bool = True  # run the web3.py client beside the raw workload
    subscribe: bool = True  # newHeads + logs subscribers over the gateway's WebSocket
