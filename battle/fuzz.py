"""The differential fuzz phase: Hypothesis-drawn requests through any gateway, judged.

:func:`run_fuzz` draws requests (:func:`battle.strategies.requests`), sends each to the
gateway's JSON-RPC URL and straight to a node (HTTP and WebSocket), and has
:func:`battle.oracle.judge` decide. It is seeded (``fuzz seed: N`` is printed first, so
``--seed N`` redoes the run) and keeps its example database under ``outdir/hypothesis``,
so a failing example is replayed first next time. Each distinct failure is shrunk and
saved as ``outdir/failures/<n>-<rule>.json``; ``python -m battle replay FILE``
(:mod:`battle.replay`) replays it.

**Bridging trio and Hypothesis.** ``@given`` is synchronous, so the test runs in a
worker thread (``trio.to_thread.run_sync``) and each example calls back into trio with
``trio.from_thread.run``.

**The wall-clock budget.** Hypothesis stops at ``max_examples`` but has no time limit.
Every judged body is memoised (the test is then a pure function of the drawn body, as
Hypothesis wants). Once the budget is spent:

* with no failure seen, the next call raises a private stop exception (:class:`_OutOfTime`)
  before drawing, and the run ends there (there is nothing to shrink). It subclasses
  ``KeyboardInterrupt`` because that is the one exception Hypothesis passes straight up
  without recording the example (any other, even a ``BaseException``, is recorded, and an
  example that drew less than the same choices did before is reported as flaky data
  generation); returning early instead fails the same way;
* with a failure seen, a body judged before answers from the memo, so shrinking and
  Hypothesis's final replay of each failure stay consistent, and a new body is rejected
  (``reject()``), so shrinking ends at once and generation stops at its invalid-example cap.

Distinct failures are told apart by exception type: each rule and reason (numbers and
hex left out) gets its own subclass of :class:`Failed`, so ``report_multiple_bugs``
shrinks and reports each, and one bug met through many methods is reported once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Unsatisfiable
from trio_websocket import WebSocketConnection, connect_websocket_url

from battle import params as p
from battle.chaindata import ChainData
from battle.exchange import filters_created, post, timed_post, uninstall_body
from battle.oracle import Verdict, deadline_s, judge, refused
from battle.results import FuzzFailure, FuzzResult
from battle.strategies import NO_ID, Drawn, requests
from lasso.corpus import Answer, CorpusRequest

SETTLE_TRIES = 3  # a failure seen while the node's head moved is judged again, this often


class Judged(msgspec.Struct, frozen=True):
    """One judged exchange: the verdict (with the node's and the gateway's HTTP answers)
    and the node's WebSocket answer."""

    verdict: Verdict
    node_ws: Answer | None = None


class Rig:
    """Sends a drawn body to the gateway and to a node (HTTP and WebSocket), and judges it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        nursery: trio.Nursery,
        node_url: str,
        node_ws_url: str,
        gateway_url: str,
    ) -> None:
        self.client, self._nursery = client, nursery
        self.node, self.node_ws_url, self.lasso = node_url, node_ws_url, gateway_url
        self._ws: WebSocketConnection | None = None

    async def judge(self, drawn: Drawn) -> Judged:
        """Judge ``drawn``; a failure seen while the node's head moved is judged again (a
        block between the two asks makes "latest" differ rightly)."""
        for _ in range(SETTLE_TRIES):
            before = await self._head()
            judged = await self._exchange(drawn)
            if judged.verdict.ok or await self._head() == before:
                return judged
        return judged

    async def verdict(self, drawn: Drawn) -> Verdict:
        return (await self.judge(drawn)).verdict

    async def _exchange(self, drawn: Drawn) -> Judged:
        answer, elapsed = await timed_post(self.client, self.lasso, drawn)
        if answer is None:
            return Judged(Verdict(False, "in time", f"no answer after {elapsed:.1f} s"))
        if created := filters_created(drawn, answer):
            await post(self.client, self.lasso, uninstall_body(created), 5)
        if refused(drawn):
            return Judged(judge(drawn, answer, elapsed, None, None))
        direct, _ = await timed_post(self.client, self.node, drawn)
        if direct is None:
            raise RuntimeError(f"the node did not answer {drawn.show()}")
        direct_ws = await self._ask_ws(drawn, expect_answer=bool(direct.body))
        return Judged(judge(drawn, answer, elapsed, direct, direct_ws), direct_ws)

    async def _ask_ws(self, drawn: Drawn, *, expect_answer: bool) -> Answer | None:
        if not self.node_ws_url:  # a node without WebSocket: judged on HTTP alone
            return None
        if self._ws is None or self._ws.closed is not None:
            self._ws = await connect_websocket_url(self._nursery, self.node_ws_url)
        await self._ws.send_message(drawn.body.decode("utf-8", "surrogateescape"))
        if not expect_answer:
            return Answer(None, b"")
        with trio.move_on_after(deadline_s(drawn) + 5):
            message = await self._ws.get_message()
            return Answer(None, message.encode() if isinstance(message, str) else message)
        # No answer: the connection may deliver it late, out of step; start a fresh one.
        await self._ws.aclose()
        self._ws = None
        return None

    async def _head(self) -> bytes:
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
        try:
            return (await post(self.client, self.node, body, 5)).body
        except httpx.HTTPError:
            return b""

    async def aclose(self) -> None:
        if self._ws is not None:
            await self._ws.aclose()


@asynccontextmanager
async def open_rig(gateway_url: str, node_url: str, node_ws_url: str) -> AsyncIterator[Rig]:
    """A :class:`Rig` for the gateway's JSON-RPC URL and one node's HTTP and WS URLs."""
    async with httpx.AsyncClient(trust_env=False) as client, trio.open_nursery() as nursery:
        rig = Rig(client, nursery, node_url, node_ws_url, gateway_url)
        try:
            yield rig
        finally:
            await rig.aclose()


# --- saved failures ------------------------------------------------------------------------


def save_failure(path: Path, drawn: Drawn, judged: Judged, *, seed: int, data: ChainData) -> None:
    """Write one failure: the request (its parts, for the oracle), the verdict, the answers."""
    v = judged.verdict
    record = {
        "seed": seed,
        "rule": v.rule,
        "reason": v.reason,
        "batch": drawn.batch,
        "body": _text(drawn.body),
        "requests": [_request_record(r) for r in drawn.requests],
        "node_answer": _answer_record(v.node),
        "node_ws_answer": _answer_record(judged.node_ws),
        "lasso_answer": _answer_record(v.lasso),
        "chain_head": {"number": data.head, "hash": data.block_hashes[-1]},
        "replay": replay_command(path),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def load_drawn(record: dict[str, Any]) -> Drawn:
    """The :class:`Drawn` a saved failure (:func:`save_failure`) holds."""
    items = tuple(
        CorpusRequest(r["name"], r["method"], _bytes(r["body"]), r.get("id", NO_ID))
        for r in record["requests"]
    )
    return Drawn(items, _bytes(record["body"]), batch=record["batch"])


def replay_command(path: Path) -> str:
    return f"python -m battle replay {path}"


def _request_record(request: CorpusRequest) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": request.name,
        "method": request.method,
        "body": _text(request.body),
    }
    if request.request_id is not NO_ID:
        record["id"] = request.request_id
    return record


def _answer_record(answer: Answer | None) -> dict[str, Any] | None:
    return None if answer is None else {"status": answer.status, "body": _text(answer.body)}


def show_answer(answer: Answer | None) -> str:
    if answer is None:
        return "(none)"
    return f"HTTP {answer.status} {_text(answer.body)[:2000]}"


def _text(body: bytes) -> str:
    return body.decode("utf-8", "surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# --- the Hypothesis session ----------------------------------------------------------------


class Failed(AssertionError):
    """A drawn request the oracle failed (or that broke the harness), with what it saw."""

    def __init__(self, drawn: Drawn, judged: Judged) -> None:
        super().__init__(f"{judged.verdict}\nrequest: {drawn.show()}")
        self.drawn, self.judged = drawn, judged


_FAILURE_TYPES: dict[tuple[str, str], type[Failed]] = {}
_TYPES_LOCK = threading.Lock()


def failure_type(rule: str, reason: str) -> type[Failed]:
    """One subclass per rule and kind of reason: Hypothesis tells bugs apart by exception
    type. Method names, numbers and hex are left out of the reason (a status, a duration,
    an id), so one bug met through many methods is one failure."""
    with _TYPES_LOCK:
        key = (rule, _NUMBERS.sub("N", _METHODS.sub("M", reason)))
        if key not in _FAILURE_TYPES:
            name = "Failed_" + _slug(f"{rule}_{len(_FAILURE_TYPES)}").replace("-", "_")
            _FAILURE_TYPES[key] = type(name, (Failed,), {})
        return _FAILURE_TYPES[key]


_METHODS = re.compile(r"\(?\b[a-z0-9]+_[A-Za-z0-9_]+\b\)?|\(item N\)")
_NUMBERS = re.compile(r"(0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F.]*")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "failure"


class _OutOfTime(KeyboardInterrupt):
    """Ends a Hypothesis run that has found nothing once the budget is spent (caught in
    :meth:`Session.run`, in the same thread: it never reaches trio or the user)."""


class Session:
    """The state of one fuzz run, shared by the Hypothesis thread and the trio side."""

    def __init__(
        self, judge_in_trio: Callable[[Drawn], Judged], data: ChainData, sizes: p.Sizes
    ) -> None:
        self._judge, self.data, self.sizes = judge_in_trio, data, sizes
        self.memo: dict[tuple[bytes, tuple[str, ...]], Judged] = {}
        self.methods: set[str] = set()
        self.examples = 0
        self.failing_seen = False
        self.fresh_until = float("inf")

    def example(self, draw: st.DataObject) -> None:
        out_of_time = time.monotonic() > self.fresh_until
        if out_of_time and not self.failing_seen:
            raise _OutOfTime  # nothing to shrink or replay: end the run here
        drawn = draw.draw(requests(self.data, self.sizes), label="request")
        key = (drawn.body, tuple(r.method for r in drawn.requests))
        judged = self.memo.get(key)
        if judged is None:
            if out_of_time:
                reject()
            judged = self._fresh(drawn)
            self.memo[key] = judged
        if not judged.verdict.ok:
            self.failing_seen = True
            raise failure_type(judged.verdict.rule, judged.verdict.reason)(drawn, judged)

    def _fresh(self, drawn: Drawn) -> Judged:
        self.examples += 1
        self.methods.update(r.method for r in drawn.requests)
        try:
            return self._judge(drawn)
        except Exception as error:  # the harness broke on it (e.g. the node went away)
            reason = f"{type(error).__name__}: {error}"
            return Judged(Verdict(False, "harness", reason))

    def run(self, *, seed: int, max_examples: int, database: Path, budget_s: float) -> list[Failed]:
        """Run Hypothesis (in a worker thread); return each distinct shrunk failure."""
        self.fresh_until = time.monotonic() + budget_s

        @settings(
            max_examples=max(max_examples, 1),
            deadline=None,
            derandomize=False,
            database=DirectoryBasedExampleDatabase(database),
            report_multiple_bugs=True,
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            print_blob=False,
        )
        @hypothesis_seed(seed)
        @given(st.data())
        def battle_fuzz(draw: st.DataObject) -> None:
            self.example(draw)

        try:
            battle_fuzz()
        except (Unsatisfiable, _OutOfTime):
            return []
        except Exception as error:  # every leaf is examined: ours are kept, others raised
            return list(_leaves(error))
        return []


def _leaves(error: BaseException) -> list[Failed]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in _leaves(e)]
    if isinstance(error, Failed):
        return [error]
    raise error


async def run_fuzz(
    gateway_url: str,
    node_url: str,
    node_ws_url: str,
    data: ChainData,
    *,
    seed: int,
    max_examples: int,
    outdir: Path,
    budget_s: float,
    sizes: p.Sizes = p.SMALL,
    database: Path | None = None,
) -> FuzzResult:
    """The differential fuzz phase against ``gateway_url`` (its JSON-RPC URL,
    ``http://HOST:PORT/rpc/<chain>``), judged against the node at ``node_url`` /
    ``node_ws_url``. Stops after ``max_examples`` judged requests or ``budget_s`` seconds,
    whichever comes first (plus the shrinking of what failed, within the same budget).
    The example database is ``database`` (default ``outdir / "hypothesis"``): give every
    run the same one so failing examples found by one run are tried first by the next."""
    print(f"fuzz seed: {seed}", flush=True)
    start = trio.current_time()
    await trio.Path(outdir).mkdir(parents=True, exist_ok=True)
    async with open_rig(gateway_url, node_url, node_ws_url) as rig:
        token = trio.lowlevel.current_trio_token()

        def judge_in_trio(drawn: Drawn) -> Judged:
            return trio.from_thread.run(rig.judge, drawn, trio_token=token)

        session = Session(judge_in_trio, data, sizes)
        found = await trio.to_thread.run_sync(
            lambda: session.run(
                seed=seed,
                max_examples=max_examples,
                database=database or outdir / "hypothesis",
                budget_s=budget_s,
            )
        )
    failures = await trio.to_thread.run_sync(
        lambda: tuple(
            _saved(outdir, n, f, seed=seed, data=data) for n, f in enumerate(found, start=1)
        )
    )
    return FuzzResult(
        seed=seed,
        examples=session.examples,
        methods=len(session.methods),
        failures=failures,
        duration_s=trio.current_time() - start,
    )


def _saved(outdir: Path, n: int, failed: Failed, *, seed: int, data: ChainData) -> FuzzFailure:
    verdict = failed.judged.verdict
    path = outdir / "failures" / f"{n}-{_slug(verdict.rule)}.json"
    save_failure(path, failed.drawn, failed.judged, seed=seed, data=data)
    command = replay_command(path)
    print(f"fuzz failure {n} [{verdict.rule}] {verdict.reason}\n  replay: {command}", flush=True)
    return FuzzFailure(
        rule=verdict.rule,
        reason=verdict.reason,
        request=_text(failed.drawn.body),
        node_answer=show_answer(verdict.node),
        lasso_answer=show_answer(verdict.lasso),
        saved_as=str(path),
        replay=command,
    )
