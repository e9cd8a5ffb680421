"""Stateful testing: a Hypothesis ``RuleBasedStateMachine`` against a live gateway.

The machine interleaves, in an order Hypothesis draws:

* **requests** drawn from :func:`battle.strategies.requests`, judged by
  :func:`battle.oracle.judge` against a node. While a node is paused, a lagging node may
  rightly make results differ, and while a provider is cut, a method that is not
  replay-safe may rightly end in -32004 (sent, then the connection lost: the gateway
  cannot know whether the node got it); then only the answer's soundness and ids are judged;
* opening and closing ``newHeads`` **subscriptions** over the gateway's WebSocket (each
  program opens one first, so every program's chaos has a subscriber);
* **mining** a block (:attr:`Target.mine`: the devnet's ``mine``, or waiting for the next
  block where the chain makes its own);
* **config reloads** that drop a provider and put it back (:meth:`Chaos.reload`);
* **chaos**: cutting and restoring a provider, pausing and resuming a node
  (:class:`battle.control.Chaos`), always leaving one provider untouched.

Invariants, after every step: each answer is JSON, never HTTP 5xx or HTML, and carries
the client's ids; a subscription the gateway closes, or whose heads skip, repeat or go
backwards, is a failure. At teardown every fault is undone, a few blocks are mined, and
each open subscription must reach the chain's head (the node's own hash) with heads
gap-free, duplicate-free and never backwards.

The machine runs in a worker thread (Hypothesis is synchronous); each rule calls into
trio with ``trio.from_thread.run`` (as tests/battle/test_differential_devnet.py does).
The same machine runs from pytest (an in-process gateway, tests/battle/
test_stateful_devnet.py) and from the battle runner (:func:`run_stateful`, a gateway
subprocess); both hand it a :class:`Target`. A run of ``steps`` steps is several short
programs (:data:`PROGRAM_STEPS` each), each settled and judged at its end: Hypothesis
draws its first programs in extreme ways (the first rule over and over, then the last),
so one long program would test little. The run stops (:class:`_Stop`) once ``steps`` are
taken or at the first failure, which is reported with the steps that led to it. Shrinking
is off: each run of the machine
costs seconds of real chain time, so a failure is reported as the program that found it.
"""

from __future__ import annotations

import itertools
import json
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import trio
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from battle.chaindata import ChainData
from battle.control import Chaos, Need
from battle.fuzz import Rig, open_rig, show_answer
from battle.oracle import MAX_JSON_DEPTH, decode_json, json_depth
from battle.strategies import NO_ID, Drawn, requests
from lasso.core.methods import is_replay_safe
from lasso.corpus import Answer, CorpusRequest

STEP_S = 30.0  # no step may take longer
SLOW_STEP_S = 0.5  # a step this slow has its time in the log
SUBSCRIBE_S = 10.0  # a refused eth_subscribe is asked again for this long
PROGRAM_STEPS = 10  # steps per program: a run is several programs, each settled at its end
SETTLE_BLOCKS = 3
MAX_SUBSCRIPTIONS = 3
#: Rules whose failures a lagging (paused) node can cause rightly: results may differ.
LAG_RELAXED = frozenset({"node's answer", "same shape", "same error class"})


@dataclass
class Target:
    """What the machine acts on: the gateway, a node to judge against, the chaos hands."""

    http_url: str  # the gateway's JSON-RPC URL (http://HOST:PORT/rpc/<chain>)
    ws_url: str  # its WebSocket URL (ws://HOST:PORT/ws/rpc/<chain>)
    node_url: str  # a direct, full node (the oracle)
    node_ws_url: str
    chaos: Chaos
    data: ChainData | None
    mine: Callable[[], Awaitable[None]]  # make (or wait for) the next block
    #: The provider id of the oracle's node: never paused, since ``mine`` waits for its
    #: next block (a paused oracle would make every later ``mine`` wait forever).
    oracle_provider: str | None = None


@dataclass
class Subscription:
    number: int
    heads: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    changed: trio.Event = field(default_factory=trio.Event)
    refusals: list[str] = field(default_factory=list)


def head_problems(heads: list[dict[str, Any]]) -> list[str]:
    """Gaps, duplicates, heads going backwards and broken parent links in ``heads``."""
    found = []
    for before, after in itertools.pairwise(heads):
        a, b = int(before["number"], 16), int(after["number"], 16)
        if b <= a:
            what = "duplicate" if after["hash"] == before["hash"] else "went backwards"
            found.append(f"head {what}: {a} then {b}")
        elif b > a + 1:
            found.append(f"gap: head {a} then {b}")
        elif after.get("parentHash") != before["hash"]:
            found.append(f"head {b}'s parent is not head {a}'s hash")
    return found


def id_problems(drawn: Drawn, answer: Answer) -> list[str]:
    """The answer must carry the id of each well-formed request (numbers and strings)."""
    body = decode_json(answer.body)
    items = body if isinstance(body, list) else [body]
    got = {json.dumps(i.get("id")) for i in items if isinstance(i, dict)}
    wanted = [r.request_id for r in drawn.requests if _well_formed(r)]
    return [f"id {w!r} did not come back" for w in wanted if json.dumps(w) not in got]


def _indeterminate(drawn: Drawn, lasso: Answer | None) -> bool:
    """A method that is not replay-safe, answered -32004 (its connection was lost after
    it was sent): while a provider is cut the gateway cannot know whether the node got
    it, so it rightly does not send it again."""
    if lasso is None or b"-32004" not in lasso.body:
        return False
    return any(not is_replay_safe(r.method) for r in drawn.requests)


def _number(sub: Subscription) -> int:
    return int(sub.heads[-1]["number"], 16) if sub.heads else -1


def _well_formed(request: CorpusRequest) -> bool:
    rid = request.request_id
    if rid is NO_ID or isinstance(rid, bool) or not isinstance(rid, int | str):
        return False
    envelope = decode_json(request.body)
    return (
        isinstance(envelope, dict)
        and envelope.get("jsonrpc") == "2.0"
        and isinstance(envelope.get("method"), str)
        and json_depth(envelope) <= MAX_JSON_DEPTH
    )


class World:
    """The trio side: every action the machine takes, and what it has seen."""

    def __init__(self, target: Target, rig: Rig, nursery: trio.Nursery) -> None:
        self.target, self.rig, self._nursery = target, rig, nursery
        self.chaos = target.chaos
        self.subs: list[Subscription] = []
        self.cut: set[str] = set()
        self.paused: set[str] = set()
        self.dropped: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []
        self.steps = 0
        self.log: list[str] = []  # the steps taken, for the failure report
        self._opened = 0
        self.budget = 0  # steps to take in all
        self.failures: list[str] = []  # what failed, each with the steps that led to it

    def took(self, seconds: float) -> None:
        """Note a slow step's time on its log line."""
        if seconds >= SLOW_STEP_S:
            self.log[-1] += f"  [{seconds:.1f} s]"

    def fail(self, problems: list[str]) -> None:
        """Record a failure (the problems and the steps that led to them)."""
        if problems and not self.failures:
            self.failures.append("\n".join(problems) + "\n" + _program(self))
        self.problems.clear()

    # --- what the machine asks for ------------------------------------------------------

    def healthy(self) -> list[str]:
        gone = self.cut | self.paused | set(self.dropped)
        return [p for p in self.chaos.providers if p not in gone]

    def pausable(self) -> list[str]:
        return [p for p in self.healthy() if p != self.target.oracle_provider]

    async def request(self, drawn: Drawn) -> None:
        judged = await self.rig.judge(drawn)
        verdict = judged.verdict
        if verdict.ok:
            return
        relaxed = self.paused or (self.cut and _indeterminate(drawn, verdict.lasso))
        if relaxed and verdict.rule in LAG_RELAXED and verdict.lasso is not None:
            found = id_problems(drawn, verdict.lasso)
        else:
            found = [
                f"FAIL [{verdict.rule}] {verdict.reason}\n  node:  {show_answer(verdict.node)}"
                f"\n  lasso: {show_answer(verdict.lasso)}"
            ]
        self.problems += [f"{p}\n  request: {drawn.show()}" for p in found]

    async def open_subscription(self) -> None:
        self._opened += 1
        sub = Subscription(self._opened)
        await self._nursery.start(self._subscription, sub)
        self.subs.append(sub)

    async def close_subscription(self, pick: int) -> None:
        sub = self.subs.pop(pick % len(self.subs))
        sub.scope.cancel()
        await sub.done.wait()
        self.problems += [f"subscription {sub.number}: {p}" for p in sub.problems]
        self.problems += [f"subscription {sub.number}: {p}" for p in head_problems(sub.heads)]

    async def cut_provider(self, provider: str) -> None:
        self.chaos.cut(provider)
        self.cut.add(provider)

    async def restore_provider(self, provider: str) -> None:
        self.chaos.restore(provider)
        self.cut.discard(provider)

    async def pause_node(self, provider: str) -> None:
        self.chaos.pause(provider)
        self.paused.add(provider)

    async def resume_node(self, provider: str) -> None:
        await self.chaos.resume(provider)
        self.paused.discard(provider)

    async def drop_provider(self, provider: str) -> None:
        def edit(settings: dict[str, Any]) -> None:
            table = self.chaos.chain_table(settings)
            kept = [p for p in table["providers"] if p.get("id") != provider]
            self.dropped[provider] = next(p for p in table["providers"] if p.get("id") == provider)
            table["providers"] = kept

        await self.chaos.reload(edit, kind="reload-drop")

    async def readd_providers(self) -> None:
        back = dict(self.dropped)

        def edit(settings: dict[str, Any]) -> None:
            table = self.chaos.chain_table(settings)
            table["providers"] = [*table["providers"], *back.values()]
            order = list(self.chaos.providers)
            table["providers"].sort(key=lambda p: order.index(p["id"]) if p["id"] in order else 0)

        await self.chaos.reload(edit, kind="reload-restore")
        self.dropped.clear()

    async def mine(self) -> None:
        await self.target.mine()

    # --- teardown -----------------------------------------------------------------------

    async def settle(self) -> list[str]:
        """Undo every fault, mine a few blocks, judge every open subscription, close them."""
        for provider in sorted(self.cut):
            await self.restore_provider(provider)
        for provider in sorted(self.paused):
            await self.resume_node(provider)
        if self.dropped:
            await self.readd_providers()
        for _ in range(SETTLE_BLOCKS):
            await self.target.mine()
        head = await self._node_head()
        found = list(self.problems)
        for sub in self.subs:
            with trio.move_on_after(15):
                while True:
                    sub.changed = trio.Event()
                    if sub.done.is_set() or _number(sub) >= head["number"]:
                        break
                    await sub.changed.wait()
            found += [f"subscription {sub.number}: {p}" for p in self._settled(sub, head)]
        for sub in self.subs:  # the next program starts with none
            sub.scope.cancel()
            await sub.done.wait()
        self.subs.clear()
        self.problems.clear()
        return found

    def _settled(self, sub: Subscription, head: dict[str, Any]) -> list[str]:
        found = sub.problems + head_problems(sub.heads)
        last = sub.heads[-1] if sub.heads else None
        if last is None or int(last["number"], 16) < head["number"]:
            seen = "nothing" if last is None else f"head {int(last['number'], 16)}"
            found.append(f"stuck: saw {seen}, the chain is at {head['number']}")
        elif int(last["number"], 16) == head["number"] and last["hash"] != head["hash"]:
            found.append(f"head {head['number']} is {last['hash']}, the node's is {head['hash']}")
        return found

    async def _node_head(self) -> dict[str, Any]:
        call = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber"}
        call["params"] = ["latest", False]
        answer = await self.rig.client.post(self.target.node_url, json=call, timeout=10)
        block = answer.json()["result"]
        return {"number": int(block["number"], 16), "hash": block["hash"]}

    async def _subscription(
        self, sub: Subscription, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        started = False
        try:
            with sub.scope:
                async with open_ws(self.target.ws_url) as ws:
                    await _subscribe(ws, sub.refusals)
                    if sub.refusals:  # got it on a retry: noted, not failed
                        note = f"eth_subscribe refused {len(sub.refusals)}x: {sub.refusals[0]}"
                        self.log.append(f"note: subscription {sub.number}: {note}")
                    task_status.started()
                    started = True
                    while True:
                        message = json.loads(await ws.get_message())
                        head = message.get("params", {}).get("result")
                        if isinstance(head, dict):
                            sub.heads.append(head)
                            sub.changed.set()
        except* ConnectionClosed as group:  # (raised inside open_ws's nursery)
            reason = getattr(group.exceptions[0], "reason", None)
            sub.problems.append(f"the gateway closed the subscription: {reason}")
        except* trio.TooSlowError:
            refused = f" (refused: {sub.refusals[-1]})" if sub.refusals else ""
            sub.problems.append(f"no subscription after {SUBSCRIBE_S:.0f} s{refused}")
        except* (OSError, ValueError) as group:
            error = group.exceptions[0]
            sub.problems.append(f"subscription broke: {type(error).__name__}: {error}")
        finally:
            sub.done.set()
            sub.changed.set()
        if not started:
            task_status.started()


@asynccontextmanager
async def open_ws(url: str) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket client connection whose socket is always closed: trio-websocket's own
    ``open_websocket_url`` leaves it open when the peer resets the connection (its abort
    path never closes the stream; a cut does exactly that), so the stream is owned here."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(host, port)
    async with stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, f"{host}:{port}", resource or "/")
        try:
            yield ws
            with trio.move_on_after(2):  # the close handshake, when not cancelled
                await ws.aclose()
        finally:
            nursery.cancel_scope.cancel()


async def _subscribe(ws: Any, refusals: list[str] | None = None) -> None:
    """``eth_subscribe newHeads``, asked again (as a client would) while the gateway
    refuses it, for up to :data:`SUBSCRIBE_S`; each refusal is added to ``refusals``."""
    request = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
    )
    with trio.fail_after(SUBSCRIBE_S):
        while True:
            await ws.send_message(request)
            reply = json.loads(await ws.get_message())
            if "result" in reply:
                return
            if refusals is not None:
                refusals.append(json.dumps(reply.get("error")))
            await trio.sleep(0.25)


# --- the machine ---------------------------------------------------------------------------


def chain_agnostic() -> st.SearchStrategy[Drawn]:
    """Requests for a target without seeded chain data."""

    def drawn(method: str, rid: int) -> Drawn:
        body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": []}).encode()
        return Drawn((CorpusRequest(method, method, body, rid),), body, batch=False)

    methods = st.sampled_from(["eth_chainId", "eth_blockNumber", "net_version", "eth_gasPrice"])
    return st.builds(drawn, methods, st.integers(0, 2**31))


def machine_for(world: World, call: Callable[..., Any]) -> type[RuleBasedStateMachine]:
    """The state machine class over ``world``; ``call(fn, *args)`` runs ``fn`` in trio."""
    chaos = world.chaos
    drawn_requests = requests(world.target.data) if world.target.data else chain_agnostic()
    picks = st.integers(0, 99)

    def step(fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        if world.steps >= world.budget or world.failures:
            raise _Stop
        world.steps += 1
        shown = ", ".join(a.show() if isinstance(a, Drawn) else repr(a) for a in args)
        world.log.append(f"{fn.__name__}({shown[:200]})")
        start = time.monotonic()
        try:
            call(_bounded, fn, *args)
        except Exception as error:  # the harness broke (or a step overran): say where
            world.fail(["".join(traceback.format_exception(error, limit=-4))])
            raise _Stop from None
        world.took(time.monotonic() - start)

    def pick(among: list[str], n: int) -> str:
        return sorted(among)[n % len(among)]

    class BattleMachine(RuleBasedStateMachine):
        @initialize()
        def subscribe(self) -> None:
            """Every program has a subscriber through all its chaos."""
            step(world.open_subscription)

        @rule(drawn=drawn_requests)
        def request(self, drawn: Drawn) -> None:
            step(world.request, drawn)

        @precondition(lambda self: len(world.subs) < MAX_SUBSCRIPTIONS)
        @rule()
        def open_subscription(self) -> None:
            step(world.open_subscription)

        @precondition(lambda self: bool(world.subs))
        @rule(n=picks)
        def close_subscription(self, n: int) -> None:
            step(world.close_subscription, n)

        @rule()
        def mine(self) -> None:
            step(world.mine)

        @precondition(lambda self: chaos.has(Need.WEBSOCKET) and len(world.healthy()) >= 2)
        @rule(n=picks)
        def cut(self, n: int) -> None:
            step(world.cut_provider, pick(world.healthy(), n))

        @precondition(lambda self: bool(world.cut))
        @rule(n=picks)
        def restore(self, n: int) -> None:
            step(world.restore_provider, pick(list(world.cut), n))

        @precondition(
            lambda self: (
                chaos.has(Need.NODES) and len(world.healthy()) >= 2 and bool(world.pausable())
            )
        )
        @rule(n=picks)
        def pause(self, n: int) -> None:
            step(world.pause_node, pick(world.pausable(), n))

        @precondition(lambda self: bool(world.paused))
        @rule(n=picks)
        def resume(self, n: int) -> None:
            step(world.resume_node, pick(list(world.paused), n))

        @precondition(lambda self: chaos.has(Need.RELOAD) and len(world.healthy()) >= 2)
        @rule(n=picks)
        def reload_without(self, n: int) -> None:
            step(world.drop_provider, pick(world.healthy(), n))

        @precondition(lambda self: bool(world.dropped))
        @rule()
        def reload_with_all(self) -> None:
            step(world.readd_providers)

        @invariant()
        def nothing_wrong(self) -> None:
            if world.problems:
                world.fail(world.problems)
                raise _Stop

        def teardown(self) -> None:
            world.log.append("settle()")
            start = time.monotonic()
            try:
                found = call(_bounded, world.settle)
            except Exception as error:
                found = ["".join(traceback.format_exception(error, limit=-4))]
            world.took(time.monotonic() - start)
            world.fail(found)

    return BattleMachine


async def _bounded(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    with trio.fail_after(STEP_S):
        return await fn(*args)


def run_machine(
    world: World, token: trio.lowlevel.TrioToken, *, seed: int | None, steps: int
) -> tuple[str, ...]:
    """Run one program of ``steps`` steps (in a worker thread); its failures."""

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        return trio.from_thread.run(fn, *args, trio_token=token)

    world.budget = steps
    machine = machine_for(world, call)

    def factory() -> RuleBasedStateMachine:
        return machine()

    if seed is not None:
        factory = hypothesis_seed(seed)(factory)
    options = settings(
        max_examples=steps + 1,  # the step budget (_Stop) ends the run, not this
        stateful_step_count=PROGRAM_STEPS,
        deadline=None,
        derandomize=seed is None,
        database=None,
        phases=(Phase.generate,),  # no shrinking: each run costs real chain time
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    with suppress(_Stop):
        try:
            run_state_machine_as_test(
                cast("type[RuleBasedStateMachine]", factory),
                settings=options,
                _min_steps=PROGRAM_STEPS,
            )
        except Exception as error:  # Hypothesis itself gave up: say why
            world.fail(["".join(traceback.format_exception(error, limit=-4))])
    return tuple(world.failures)


class _Stop(KeyboardInterrupt):
    """Ends the run: the step budget is spent, or something failed.

    Findings never reach Hypothesis as test failures: it would replay the program to
    report it (each replay costs real chain time, and timing-dependent findings would be
    reported as flaky), and a program that ends early at a choice it drew further on
    before is reported as flaky data generation. Hypothesis passes ``KeyboardInterrupt``
    straight up without recording the example, after running the machine's teardown
    (which settles and judges the program that was cut short), so the stop is one.
    """


def _program(world: World) -> str:
    shown = world.log[-40:]
    skipped = len(world.log) - len(shown)
    return (
        "steps:"
        + (f" ({skipped} earlier)" if skipped else "")
        + "".join(f"\n  {line}" for line in shown)
    )


@asynccontextmanager
async def open_world(target: Target) -> AsyncIterator[World]:
    async with (
        open_rig(target.http_url, target.node_url, target.node_ws_url) as rig,
        trio.open_nursery() as nursery,
    ):
        world = World(target, rig, nursery)
        try:
            yield world
        finally:
            for sub in world.subs:
                sub.scope.cancel()


async def run_target(
    target: Target, *, seed: int | None, steps: int, log: list[str] | None = None
) -> tuple[int, tuple[str, ...]]:
    """Run the machine against ``target``: (steps taken, failures). ``log``, if given,
    gets every step taken."""
    async with open_world(target) as world:
        token = trio.lowlevel.current_trio_token()
        failures = await trio.to_thread.run_sync(
            lambda: run_machine(world, token, seed=seed, steps=steps)
        )
    if log is not None:
        log += world.log
    return world.steps, failures


async def wait_for_next_block(node_ws_url: str) -> None:
    """For a chain that makes its own blocks: return once the node announces the next."""
    with trio.fail_after(15):
        async with open_ws(node_ws_url) as ws:
            await _subscribe(ws)
            while "params" not in json.loads(await ws.get_message()):
                pass


async def run_stateful(env: Any, seed: int, steps: int) -> tuple[int, tuple[str, ...]]:
    """The runner's stateful phase: the machine against a fresh gateway of the battle env
    (:class:`battle.env.BattleEnv`), ``steps`` steps, seeded. Returns (steps, failures)."""
    from battle.events import Recorder

    async with env.gateway(Recorder()) as gateway:

        async def mine() -> None:
            if env.oracle_ws_url:
                await wait_for_next_block(env.oracle_ws_url)
            else:  # no WebSocket to hear the next block on: wait about one
                await trio.sleep(1.0)

        target = Target(
            http_url=gateway.http_url,
            ws_url=gateway.ws_url,
            node_url=env.oracle_http_url,
            node_ws_url=env.oracle_ws_url or "",
            chaos=gateway.chaos,
            data=env.chain_data,
            mine=mine,
            # The devnet's oracle is node 0, its first provider (battle.targets).
            oracle_provider=gateway.chaos.providers[0] if gateway.chaos.has(Need.NODES) else None,
        )
        return await run_target(target, seed=seed, steps=steps)
