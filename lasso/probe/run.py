"""Probing a chain's providers, each directly and all at once: the I/O shell of ``lasso probe``.

:func:`probe_chain` runs :func:`probe_provider` for every provider concurrently. Each
provider first answers ``eth_chainId`` and ``eth_blockNumber`` (one that does not is
reported as "no answer" and left alone), then its latest block gives the params
(:class:`~lasso.core.probe_methods.ProbeContext`), and four probes run side by side:
the method catalogue (a few calls at a time), the archival search, the ``eth_getLogs``
range search (both driven by :mod:`lasso.core.probe_search`), and batch plus WebSocket
subscription support. Every call has its own deadline, and the provider as a whole has
``provider_deadline_s``: a dead or stalling provider cannot hang the probe.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

import msgspec
import trio

from lasso.config import ChainConfig, ProviderConfig, mask_url
from lasso.core.logs_split import is_range_error, learned_range_limit
from lasso.core.probe_methods import (
    METHODS,
    ZERO_ADDRESS,
    ProbeContext,
    Verdict,
    state_refused,
)
from lasso.core.probe_search import DEFAULT_LOGS_BOUND, ArchivalSearch, RangeLimitSearch
from lasso.errors import UpstreamError, UpstreamRpcError, UpstreamTimeout
from lasso.probe.client import DirectClient, probe_subscriptions, rpc_error_verdict
from lasso.probe.report import ArchivalOutcome, LogsOutcome, MethodOutcome, ProviderReport

__all__ = ["ProbeOptions", "probe_chain", "probe_provider"]

#: A failed call, or an answer not shaped as a node's would be.
_BAD_ANSWER: Final = (UpstreamError, msgspec.DecodeError, ValueError, TypeError, KeyError)
#: How far back from the head to look for a transaction to build params from.
TX_LOOKBACK_BLOCKS = 8


class ProbeOptions(msgspec.Struct, frozen=True, kw_only=True):
    call_timeout_s: float = 5.0
    provider_deadline_s: float = 60.0
    method_concurrency: int = 4
    logs_bound: int = DEFAULT_LOGS_BOUND


async def probe_chain(chain: ChainConfig, options: ProbeOptions) -> list[ProviderReport]:
    """Every provider of ``chain``, probed concurrently; reports in config order."""
    reports: list[ProviderReport | None] = [None] * len(chain.providers)

    async def one(index: int, provider: ProviderConfig) -> None:
        reports[index] = await probe_provider(provider, chain.chain_id, options)

    async with trio.open_nursery() as nursery:
        for index, provider in enumerate(chain.providers):
            nursery.start_soon(one, index, provider)
    return [r for r in reports if r is not None]


async def probe_provider(
    config: ProviderConfig, chain_id: int | None, options: ProbeOptions
) -> ProviderReport:
    started = trio.current_time()
    client = DirectClient(config, call_timeout_s=options.call_timeout_s)
    probe = _ProviderProbe(config, client, options)
    try:
        await probe.run_within_deadline(chain_id)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await client.aclose()
    return probe.report(trio.current_time() - started)


class _ProviderProbe:
    """One provider's probe and what it has found so far (a deadline keeps the rest)."""

    def __init__(self, config: ProviderConfig, client: DirectClient, options: ProbeOptions):
        self.config = config
        self.client = client
        self.options = options
        self.error = ""
        self.answered = False
        self.chain_id: int | None = None
        self.client_version = ""
        self.context: ProbeContext | None = None
        self.methods: dict[str, MethodOutcome] = {}
        self.archival: ArchivalOutcome | None = None
        self.logs: LogsOutcome | None = None
        self.batch: tuple[bool | None, str] = (None, "not measured")
        self.subscriptions: tuple[bool | None, str] = (None, "not measured")
        self.notes: list[str] = []

    async def run_within_deadline(self, chain_id: int | None) -> None:
        """:meth:`run`, stopped at the provider deadline (what was found is kept)."""
        deadline_s = self.options.provider_deadline_s
        with trio.move_on_after(deadline_s) as budget:
            await self.run(chain_id)
        if budget.cancelled_caught:
            self.notes.append(f"stopped after the {deadline_s:g} s provider deadline")

    async def run(self, chain_id: int | None) -> None:
        try:
            self.chain_id = int(await self.client.call_json("eth_chainId", []), 16)
            self.context = await self._context()
        except _BAD_ANSWER as exc:
            self.error = _describe(exc)
            return
        self.answered = True
        if chain_id is not None and self.chain_id != chain_id:
            self.notes.append(f"chain id {self.chain_id}, but the chain is configured {chain_id}")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._client_version)
            nursery.start_soon(self._methods, self.context)
            nursery.start_soon(self._archival, self.context)
            nursery.start_soon(self._logs, self.context)
            nursery.start_soon(self._batch_and_subscriptions)

    async def _client_version(self) -> None:
        with _quiet():
            self.client_version = str(await self.client.call_json("web3_clientVersion", []))

    async def _context(self) -> ProbeContext:
        """Params from the latest block: its number and hash, and a transaction at or near it."""
        block = await self.client.call_json("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict):
            raise ValueError(f"eth_getBlockByNumber(latest) answered {block!r}")
        head = int(block["number"], 16)
        context = ProbeContext(
            head=head, block_hash=str(block["hash"]), address=str(block.get("miner", ZERO_ADDRESS))
        )
        for number in range(head, max(-1, head - TX_LOOKBACK_BLOCKS), -1):
            if number != head:
                with _quiet():
                    block = await self.client.call_json(
                        "eth_getBlockByNumber", [hex(number), False]
                    )
            transactions = block.get("transactions") if isinstance(block, dict) else None
            if transactions:
                return await self._with_transaction(context, str(transactions[0]))
        return context

    async def _with_transaction(self, context: ProbeContext, tx_hash: str) -> ProbeContext:
        sender = context.address
        with _quiet():
            tx = await self.client.call_json("eth_getTransactionByHash", [tx_hash])
            if isinstance(tx, dict) and isinstance(tx.get("from"), str):
                sender = tx["from"]
        return msgspec.structs.replace(context, tx_hash=tx_hash, address=sender)

    # --- the four probes -------------------------------------------------------------

    async def _methods(self, context: ProbeContext) -> None:
        limiter = trio.CapacityLimiter(self.options.method_concurrency)

        async def one(method: str, params: list[Any]) -> None:
            async with limiter:
                self.methods[method] = await self._method(method, params)

        async with trio.open_nursery() as nursery:
            for method, build in METHODS:
                nursery.start_soon(one, method, build(context))

    async def _method(self, method: str, params: list[Any]) -> MethodOutcome:
        try:
            await self.client.call(method, params)
        except UpstreamError as exc:
            verdict = rpc_error_verdict(exc)
            return MethodOutcome(method, verdict, _describe(exc))
        return MethodOutcome(method, Verdict.SUPPORTED)

    async def _archival(self, context: ProbeContext) -> None:
        search = ArchivalSearch(context.head)
        self.archival = ArchivalOutcome(head=context.head, detail="not finished")
        detail = ""
        while (block := search.next_probe()) is not None:
            try:
                await self.client.call("eth_getBalance", [ZERO_ADDRESS, hex(block)])
                served = True
            except UpstreamRpcError as exc:
                if not state_refused(exc.reason):
                    detail = f"eth_getBalance at {block}: {_describe(exc)}"
                    break
                served = False
            except UpstreamError as exc:
                detail = f"eth_getBalance at {block}: {_describe(exc)}"
                break
            search.record(block, served)
            self.archival = _archival_outcome(search, "not finished")
        if search.no_state:
            detail = f"not even the head's state (block {context.head}) is served"
        head = search.head
        if search.earliest is not None and not search.full:
            with _quiet():  # the window moved with the chain while we searched
                head = int(await self.client.call_json("eth_blockNumber", []), 16)
        self.archival = _archival_outcome(search, detail, head)

    async def _logs(self, context: ProbeContext) -> None:
        bound = max(1, min(self.options.logs_bound, context.head + 1))
        search = RangeLimitSearch(bound)
        self.logs = LogsOutcome(bound=bound, detail="not finished")
        detail = ""
        while (span := search.next_probe()) is not None:
            low = context.head - span + 1
            logs_filter = {
                "fromBlock": hex(low),
                "toBlock": context.head_hex,
                "address": ZERO_ADDRESS,
            }
            try:
                await self.client.call("eth_getLogs", [logs_filter])
                search.record(span, accepted=True)
            except UpstreamRpcError as exc:
                if not is_range_error(exc.message, exc.rpc_code):
                    detail = f"eth_getLogs over {span} blocks: {_describe(exc)}"
                    break
                search.record(span, False, learned_range_limit(exc.message, exc.rpc_code))
            except UpstreamTimeout as exc:
                if span == 1:  # not even one block in time: the node is stuck, not limited
                    detail = f"eth_getLogs over 1 block: {_describe(exc)}"
                    break
                search.record(span, accepted=False)  # too wide to answer in time is a limit
            except UpstreamError as exc:
                detail = f"eth_getLogs over {span} blocks: {_describe(exc)}"
                break
            self.logs = _logs_outcome(search, "not finished")
        if search.refuses_all:
            detail = "even a one-block range is refused"
        self.logs = _logs_outcome(search, detail)

    async def _batch_and_subscriptions(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._batch)
            nursery.start_soon(self._subscriptions)

    async def _batch(self) -> None:
        self.batch = await self.client.supports_batch()

    async def _subscriptions(self) -> None:
        timeout_s = self.options.call_timeout_s
        self.subscriptions = (None, f"no answer within {timeout_s:g} s")
        with trio.move_on_after(timeout_s):
            self.subscriptions = await probe_subscriptions(self.config)

    # --- the report ------------------------------------------------------------------

    def report(self, elapsed_s: float) -> ProviderReport:
        order = [name for name, _ in METHODS]
        methods = tuple(self.methods[m] for m in order if m in self.methods)
        if self.answered:
            missing = [m for m in order if m not in self.methods]
            methods += tuple(
                MethodOutcome(m, Verdict.UNKNOWN, "not probed in time") for m in missing
            )
        return ProviderReport(
            id=self.config.id,
            url=mask_url(self.config.url),
            answered=self.answered,
            error=self.error or "no answer within the provider deadline",
            chain_id=self.chain_id,
            client=self.client_version,
            head=None if self.context is None else self.context.head,
            methods=methods,
            archival=self.archival,
            logs=self.logs,
            batch=self.batch[0],
            batch_detail=self.batch[1],
            subscriptions=self.subscriptions[0],
            subscriptions_detail=self.subscriptions[1],
            elapsed_s=elapsed_s,
            notes=tuple(self.notes),
        )


def _archival_outcome(
    search: ArchivalSearch, detail: str, head: int | None = None
) -> ArchivalOutcome:
    done = search.done
    return ArchivalOutcome(
        head=search.head if head is None else head,
        full=search.full if done and not search.no_state else None,
        earliest=search.earliest,
        probes=search.probes,
        detail=detail if not done or search.no_state else "",
    )


def _logs_outcome(search: RangeLimitSearch, detail: str) -> LogsOutcome:
    done = search.done
    return LogsOutcome(
        bound=search.bound,
        limit=search.limit if done else None,
        unlimited=search.unlimited,
        named=search.named,
        probes=search.probes,
        detail=detail if not done or search.refuses_all else "",
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UpstreamRpcError):
        return f"{exc.rpc_code} {exc.message}"[:160]
    if isinstance(exc, UpstreamError):
        return f"{type(exc).__name__}: {exc.message}"[:160]
    return f"{type(exc).__name__}: {exc}"[:160]


def _quiet() -> contextlib.suppress:
    """Suppress an optional call's upstream error or unexpected answer."""
    return contextlib.suppress(*_BAD_ANSWER)
