"""The battle's state machine (battle/stateful.py) against Lasso in front of a 3-node devnet.

Lasso runs in-process from a config file, with reloads through a memory channel (the
daemon's SIGHUP path); every provider is reached through a TCP relay the machine can cut,
and nodes pause and resume (a lagging node). :class:`LocalChaos` gives the machine those
actions through the same :class:`battle.control.Chaos` protocol the battle env
implements, so this test and the runner share the machine. Derandomized: the same
program every run.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

from battle.chaindata import create_chain_data
from battle.control import Need
from battle.stateful import (
    Target,
    _indeterminate,
    head_problems,
    id_problems,
    open_world,
    run_stateful,
    run_target,
)
from battle.strategies import Drawn
from lasso.chaos.faults import Fault
from lasso.chaos.logslimit import LogsLimit
from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.corpus import Answer, CorpusRequest
from lasso.devnet import Devnet, open_devnet
from lasso.reload import ReloadState
from tests.support.front import serve_reloadable, sighup_applied

STEPS = 150


def toml(table: dict[str, Any], prefix: str = "") -> str:
    """Just enough TOML for the settings this test writes (tables, scalars, inline tables)."""
    lines = [f"{k} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for k, v in table.items():
        if isinstance(v, dict):
            lines += [f"[{prefix}{k}]", toml(v, f"{prefix}{k}.")]
    return "\n".join(lines) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_value(i) for i in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(i)}" for k, i in v.items()) + " }"
    return json.dumps(v)


class LocalChaos:
    """:class:`battle.control.Chaos` over an in-process gateway: relays, nodes, reloads."""

    def __init__(
        self,
        devnet: Devnet,
        relays: Sequence[TcpRelay],
        path: Path,
        settings: dict[str, Any],
        state: ReloadState,
        send: trio.MemorySendChannel[object],
    ) -> None:
        self.devnet, self.relays, self.path, self.settings = devnet, relays, path, settings
        self.state, self._send = state, send
        self.actions: list[str] = []

    @property
    def providers(self) -> Sequence[str]:
        return [f"n{i}" for i in range(len(self.relays))]

    @property
    def pruned(self) -> str | None:
        return None

    def has(self, need: Need) -> bool:
        return need in (Need.NODES, Need.WEBSOCKET, Need.RELOAD)

    def _index(self, provider: str) -> int:
        return int(provider.removeprefix("n"))

    async def kill(self, provider: str) -> None:
        raise NotImplementedError

    def pause(self, provider: str) -> None:
        self.actions.append(f"pause {provider}")
        self.devnet.pause(self._index(provider))

    async def resume(self, provider: str) -> None:
        self.actions.append(f"resume {provider}")
        await self.devnet.resume(self._index(provider))

    async def fork(self, provider: str) -> None:
        raise NotImplementedError

    async def heal(self, provider: str) -> None:
        raise NotImplementedError

    def cut(self, provider: str) -> None:
        self.actions.append(f"cut {provider}")
        self.relays[self._index(provider)].cut()

    def cut_ws(self, provider: str) -> None:
        raise NotImplementedError

    def restore(self, provider: str) -> None:
        self.actions.append(f"restore {provider}")
        self.relays[self._index(provider)].restore()

    def set_fault(
        self, provider: str, fault: Fault | None, *, methods: frozenset[str] | None = None
    ) -> None:
        raise NotImplementedError

    def set_delay(self, provider: str, seconds: float) -> None:
        raise NotImplementedError

    def set_logs_limit(self, provider: str, limit: LogsLimit | None) -> None:
        raise NotImplementedError

    def set_retry_after(self, provider: str, seconds: int) -> None:
        raise NotImplementedError

    async def reload(
        self, edit: Callable[[dict[str, Any]], None], *, kind: str, target: str | None = None
    ) -> None:
        """Edit the settings, write the file, "SIGHUP", wait for the new generation."""
        self.actions.append(kind)
        edit(self.settings)
        await trio.Path(self.path).write_text(toml(self.settings))
        await sighup_applied(self.state, self._send)

    def chain_table(self, settings: dict[str, Any]) -> dict[str, Any]:
        table: dict[str, Any] = settings["chains"]["devnet"]
        return table


@asynccontextmanager
async def local_target(tmp_path: Path) -> AsyncIterator[tuple[Target, LocalChaos]]:
    async with AsyncExitStack() as stack:
        devnet = await stack.enter_async_context(
            open_devnet(nodes=3, block_time_s=None, port_base=0)
        )
        with trio.fail_after(30):
            data = await create_chain_data(devnet)
        relays = [
            await stack.enter_async_context(open_tcp_relay(urlsplit(n.http_url).port or 0))
            for n in devnet.nodes
        ]
        providers = [
            {
                "id": f"n{i}",
                "url": f"http://127.0.0.1:{r.port}",
                "ws_url": f"ws://127.0.0.1:{r.port}",
                "priority": i,
            }
            for i, r in enumerate(relays)
        ]
        settings = {
            "chains": {"devnet": {"chain_id": 31337, "block_time_ms": 1000, "providers": providers}}
        }
        path = tmp_path / "lasso.toml"
        path.write_text(toml(settings))
        front = await stack.enter_async_context(serve_reloadable(path))
        chaos = LocalChaos(devnet, relays, path, settings, front.state, front.send)
        base = front.bind
        node = devnet.nodes[0]
        yield (
            Target(
                http_url=f"{base}/rpc/devnet",
                ws_url=base.replace("http://", "ws://") + "/ws/rpc/devnet",
                node_url=node.http_url,
                node_ws_url=node.ws_url,
                chaos=chaos,
                data=data,
                mine=partial(_mine, devnet),
            ),
            chaos,
        )


async def _mine(devnet: Devnet) -> None:
    await devnet.mine()


def test_heads_with_a_gap_a_repeat_or_a_step_back_are_named() -> None:
    def head(n: int, parent: int | None = None) -> dict[str, Any]:
        p = n - 1 if parent is None else parent
        return {"number": hex(n), "hash": f"h{n}", "parentHash": f"h{p}"}

    assert head_problems([head(1), head(2), head(3)]) == []
    assert head_problems([head(1), head(3)]) == ["gap: head 1 then 3"]
    assert head_problems([head(2), head(2)]) == ["head duplicate: 2 then 2"]
    assert head_problems([head(3), head(2)]) == ["head went backwards: 3 then 2"]
    assert head_problems([head(1), head(2, parent=7)]) == ["head 2's parent is not head 1's hash"]


@pytest.mark.integration
@pytest.mark.slow
async def test_the_state_machine_finds_nothing_wrong_with_lasso(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with local_target(tmp_path) as (target, chaos):
            log: list[str] = []
            steps, failures = await run_target(target, seed=None, steps=STEPS, log=log)
    assert not failures, "\n".join(failures) + "\nactions: " + ", ".join(chaos.actions)
    assert steps >= STEPS
    # The derandomized programs exercise every kind of step, chaos and reloads included.
    kinds = {line.split("(")[0] for line in log}
    assert kinds >= {
        "request", "open_subscription", "close_subscription", "mine", "cut_provider",
        "pause_node", "drop_provider", "settle",
    }, "\n".join(log)  # fmt: skip
    assert {a.split()[0] for a in chaos.actions} >= {"cut", "pause", "reload-drop"}


@pytest.mark.integration
@pytest.mark.slow
async def test_a_subscription_without_failover_fails_the_invariants(tmp_path: Path) -> None:
    """The machine's checks catch what a gateway without failover does: its subscription,
    here straight to node 1's relay, dies when the machine cuts node 1."""
    with trio.fail_after(60):
        async with local_target(tmp_path) as (target, chaos):
            relay = chaos.relays[1]
            direct = dataclasses.replace(target, ws_url=f"ws://127.0.0.1:{relay.port}")
            async with open_world(direct) as world:
                await world.open_subscription()
                await world.mine()
                await world.cut_provider("n1")
                await world.mine()
                found = await world.settle()
    assert found and "subscription 1:" in found[0], found
    assert any("closed" in f or "broke" in f or "stuck" in f for f in found), found


def test_ids_must_come_back_and_a_lost_raw_transaction_is_indeterminate() -> None:
    body = b'{"jsonrpc":"2.0","id":"a","method":"eth_sendRawTransaction","params":["0x"]}'
    drawn = Drawn((CorpusRequest("s", "eth_sendRawTransaction", body, "a"),), body, False)
    lost = Answer(200, b'{"jsonrpc":"2.0","id":"a","error":{"code":-32004,"message":"x"}}')
    assert id_problems(drawn, lost) == []
    assert id_problems(drawn, Answer(200, b'{"jsonrpc":"2.0","id":null}')) == [
        "id 'a' did not come back"
    ]
    assert _indeterminate(drawn, lost)
    read = dataclasses.replace(drawn.requests[0], method="eth_getBalance")
    assert not _indeterminate(Drawn((read,), body, False), lost)


class FakeEnv:
    """The runner's view (battle.env.BattleEnv) of the local target: what run_stateful uses."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.oracle_http_url, self.oracle_ws_url = target.node_url, target.node_ws_url
        self.chain_data = target.data

    @asynccontextmanager
    async def gateway(self, recorder: object) -> AsyncIterator[Any]:
        t = self.target
        yield types.SimpleNamespace(http_url=t.http_url, ws_url=t.ws_url, chaos=t.chaos)


@pytest.mark.integration
@pytest.mark.slow
async def test_the_runner_entry_point_runs_the_machine_on_a_chain_that_mines_itself(
    tmp_path: Path,
) -> None:
    with trio.fail_after(60):
        async with local_target(tmp_path) as (target, chaos), trio.open_nursery() as nursery:
            assert isinstance(chaos.devnet, Devnet)
            await nursery.start(chaos.devnet.mine_every, 0.2)
            steps, failures = await run_stateful(FakeEnv(target), seed=5, steps=30)
            nursery.cancel_scope.cancel()
    assert steps == 30 and not failures, "\n".join(failures)
