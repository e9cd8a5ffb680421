"""eth_sendRawTransaction: a signed transaction is idempotent, so resend it.

Theory of operation. The same signed bytes can be included at most once (the
nonce guarantees it), so sending them again, to the same provider or another, can
do no harm. The gateway therefore treats the send as replay-safe, unlike an
unknown write (:mod:`lasso.dispatch` dispatches those once unless they provably
never left):

* **Failover.** After an ambiguous failure (the request was written, then the
  connection closed or the attempt timed out), the send goes on to the next
  provider, as a read would.
  Each provider's first channel comes first (:func:`providers_first`): a hung
  node must not eat the deadline over its HTTP and then its WebSocket channel.
* **Same hash, same answer.** The hash is computed locally
  (:mod:`lasso.core.txhash`), only when a refusal needs it. A node that says it
  already has the transaction ("already known" and kin,
  :mod:`lasso.core.txreplies`) has accepted it: the client gets the hash, as
  from a node that took it now. A
  "nonce too low" is success only if a provider knows the transaction by that
  hash (``eth_getTransactionByHash`` is not null); otherwise the node's own
  error goes to the client unchanged.
* **Broadcast** (``broadcast_raw_transactions = true`` on the chain): one send
  to every provider the router planned (the healthy ones) at once; the first
  success (an "already known" is one) answers the client, while the other sends
  finish in the gateway's service nursery within the method deadline, so every
  provider still gets the transaction. All failed: the same judgement as above
  over every attempt, else the agreed node error or the exhausted error.

Params that are not one well-formed transaction have no local hash: the call is
dispatched as any other write, and the node's own error reaches the client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.core.jsonrpc import Call
from lasso.core.router import RoutePlan
from lasso.core.txhash import raw_of_params, transaction_hash
from lasso.core.txreplies import Refusal, refusal_of, strongest
from lasso.dispatch import ANSWER_MARGIN_S, dispatch, providers_first
from lasso.errors import LassoError, UpstreamError
from lasso.outcome import Outcome, exhausted

__all__ = ["SEND_RAW", "send_raw_transaction"]

log = logging.getLogger("lasso.transactions")

SEND_RAW = "eth_sendRawTransaction"
LOOKUP = "eth_getTransactionByHash"
#: Bigger signed transactions are hashed in a worker thread: pure-Python Keccak
#: costs about 0.1-0.2 ms per 136 bytes, and the event loop must not stall.
INLINE_HASH_BYTES = 4096


async def send_raw_transaction(
    chain: ChainRuntime,
    call: Call,
    plan: RoutePlan,
    outcome: Outcome,
    *,
    started_at: float,
    services: trio.Nursery | None = None,
) -> bytes:
    """The raw result for the client, or raise its error (see the module docstring)."""
    raw = raw_of_params(call.params)
    if raw is None:  # not a transaction we can name: the node's own error path
        return await dispatch(chain, call, plan, outcome, started_at=started_at)
    send = _Send(chain, call, raw, started_at + plan.deadline_s - ANSWER_MARGIN_S)
    providers = _provider_ids(plan)
    if chain.config.broadcast_raw_transactions and plan.failover and len(providers) > 1:
        return await send.broadcast(plan, providers, outcome, services)
    idempotent = msgspec.structs.replace(
        plan,
        channels=providers_first(plan.channels),
        replay_safe=True,
        max_attempts=chain.routing.max_attempts if plan.failover else 1,
    )
    try:
        return await dispatch(chain, call, idempotent, outcome, started_at=started_at)
    except LassoError as exc:
        return await send.judge(outcome, exc)


def _served_by(outcome: Outcome, evidence: UpstreamError) -> None:
    """Routing metadata: the provider whose refusal proved the transaction is known."""
    outcome.provider = evidence.provider_id
    outcome.transport = next(t for t, exc in outcome.failures if exc is evidence)


def _credit(outcome: Outcome, winner: Outcome) -> None:
    """Routing metadata: the broadcast send that answered the client."""
    if winner.provider is not None:
        outcome.provider, outcome.transport = winner.provider, winner.transport
        outcome.upstream_latency_us = winner.upstream_latency_us
        return
    _, evidence = strongest(exc for _, exc in winner.failures)  # its "already known"
    if evidence is not None:
        _served_by(outcome, evidence)


def _provider_ids(plan: RoutePlan) -> list[str]:
    """The plan's providers, each once, in plan order."""
    return list(dict.fromkeys(view.provider_id for view in plan.channels))


class _Send:
    """One client's send: its bytes, its deadline, and how to judge refusals.

    The hash is computed only when a refusal needs it (a success carries the
    node's own answer), once.
    """

    def __init__(self, chain: ChainRuntime, call: Call, raw: bytes, deadline: float) -> None:
        self.chain = chain
        self.call = call
        self.raw = raw
        self.deadline = deadline
        self._hash: str | None = None

    async def tx_hash(self) -> str:
        """``0x…`` lowercase, as a node answers."""
        if self._hash is None:
            if len(self.raw) > INLINE_HASH_BYTES:
                digest = await trio.to_thread.run_sync(transaction_hash, self.raw)
            else:
                digest = transaction_hash(self.raw)
            assert digest is not None  # raw_of_params checked the framing
            self._hash = "0x" + digest.hex()
        return self._hash

    async def answer(self) -> bytes:
        """The result bytes for "the node has it": the hash as a JSON string."""
        return msgspec.json.encode(await self.tx_hash())

    async def judge(self, outcome: Outcome, error: LassoError) -> bytes:
        """Nothing succeeded: the hash if a refusal proves the tx is known, else ``error``."""
        refusal, evidence = strongest(exc for _, exc in outcome.failures)
        if refusal is Refusal.ALREADY_KNOWN and evidence is not None:
            _served_by(outcome, evidence)  # it holds the transaction
            return await self.answer()
        if refusal is Refusal.NONCE_TOO_LOW and evidence is not None:
            if await self._known():
                _served_by(outcome, evidence)
                return await self.answer()
            raise evidence  # the node's own nonce-too-low error, unchanged
        raise error

    async def _known(self) -> bool:
        """Does any provider return the transaction for this hash (not null)?"""
        lookup = Call(LOOKUP, msgspec.json.encode([await self.tx_hash()]), b"1")
        now = trio.current_time()
        plan = self.chain.plan(LOOKUP, now, strategy=None, provider=None, params=lookup.params)
        found = False

        async def ask(provider_id: str, cancel: trio.CancelScope) -> None:
            nonlocal found
            pinned = self.chain.plan(
                LOOKUP,
                trio.current_time(),
                strategy=None,
                provider=provider_id,
                params=lookup.params,
            )
            try:
                result = await dispatch(self.chain, lookup, pinned, Outcome())
            except LassoError:
                return
            if result.strip() != b"null":
                found = True
                cancel.cancel(reason="transaction found")

        with trio.move_on_after(max(self.deadline - now, 0.0)):
            async with trio.open_nursery() as nursery:
                for provider_id in _provider_ids(plan):
                    nursery.start_soon(ask, provider_id, nursery.cancel_scope)
        return found

    async def broadcast(
        self,
        plan: RoutePlan,
        providers: list[str],
        outcome: Outcome,
        services: trio.Nursery | None,
    ) -> bytes:
        race = _Broadcast(len(providers))
        if services is None:  # no service nursery (a bare gateway): wait for every send
            async with trio.open_nursery() as nursery:
                for provider_id in providers:
                    nursery.start_soon(self._send_one, provider_id, race)
        else:
            for provider_id in providers:
                services.start_soon(self._send_one, provider_id, race)
            await race.decided.wait()
        outcome.attempts.extend(a for sub in race.outcomes for a in sub.attempts)
        outcome.failures.extend(f for sub in race.outcomes for f in sub.failures)
        if race.winner is None:
            return await self.judge(outcome, exhausted(self.call, plan, outcome))
        _credit(outcome, race.winner)
        return race.result

    async def _send_one(self, provider_id: str, race: _Broadcast) -> None:
        sub = Outcome()
        pinned = self.chain.plan(
            SEND_RAW,
            trio.current_time(),
            strategy=None,
            provider=provider_id,
            params=self.call.params,
        )
        pinned = msgspec.structs.replace(
            pinned, deadline_s=max(self.deadline + ANSWER_MARGIN_S - trio.current_time(), 0.0)
        )
        try:
            result = await dispatch(self.chain, self.call, pinned, sub)
        except LassoError:
            known = any(refusal_of(exc) is Refusal.ALREADY_KNOWN for _, exc in sub.failures)
            race.finished(sub, await self.answer() if known else None)
            return
        except Exception:  # our bug: it may run in the service nursery, so never escape
            log.exception("broadcast of a raw transaction to %s failed", provider_id)
            race.finished(sub, None)
            return
        race.finished(sub, result)


@dataclass
class _Broadcast:
    """The sends of one broadcast: decided at the first success, or when all are done."""

    pending: int
    outcomes: list[Outcome] = field(default_factory=list)
    winner: Outcome | None = None
    result: bytes = b""
    decided: trio.Event = field(default_factory=trio.Event)

    def finished(self, sub: Outcome, result: bytes | None) -> None:
        self.pending -= 1
        if self.decided.is_set():
            return  # the client has its answer: later sends only reach their providers
        self.outcomes.append(sub)
        if result is not None:
            self.winner, self.result = sub, result
            self.decided.set()
        elif self.pending == 0:
            self.decided.set()
