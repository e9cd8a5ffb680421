"""What Lasso did for one call: the record behind routing metadata.

:class:`CallMeta` is the I/O shell's data, not presentation, so it lives here and
not in ``lasso.web``: the gateway starts one per call, the dispatcher times the
call from its start, and the plan and outcome are filled in while the call runs.
The shell must not import the web front end, which sits outside it. What a
client sees of the record (``?include_meta``, the ``x-lasso-meta`` header, the
``lasso_meta`` member) is decided in :mod:`lasso.web.meta`; :meth:`CallMeta.to_dict`
is the record's own JSON form, as ``statistics()`` is a component's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import trio

from lasso import reqid

if TYPE_CHECKING:
    from lasso.core.router import RoutePlan
    from lasso.dispatch import Outcome
    from lasso.gateway import Target


class CallMeta:
    """Collects one call's routing facts as it runs. Cheap when nobody asks."""

    __slots__ = (
        "_ended",
        "_outcome",
        "_plan",
        "_request",
        "_started",
        "cache",
        "chain",
        "code",
        "method",
        "profile",
        "result",
        "transport",
    )

    def __init__(
        self, chain: str, method: str, started: float, *, profile: str = "", transport: str = "http"
    ) -> None:
        self.chain = chain
        self.method = method
        self.profile = profile
        #: The client's transport: ``http`` or ``ws``.
        self.transport = transport
        # The request id of the client request this call came in (``lasso.reqid``).
        self._request = reqid.ref()
        #: How the call ended (set by the gateway): ``ok``, ``node_error`` (the node's own
        #: JSON-RPC error, passed through), ``error`` (Lasso's error) or ``internal``.
        self.result = "ok"
        #: The JSON-RPC error code the client got, for ``node_error`` and ``error``.
        self.code: int | None = None
        self._started = started
        self._ended: float | None = None
        self._plan: RoutePlan | None = None
        self._outcome: Outcome | None = None
        #: The response cache's part (``lasso.cache``): ``hit``, ``miss``, ``bypass``, or
        #: None when the method is never cached.
        self.cache: str | None = None

    @property
    def request_id(self) -> str | None:
        """The id of the client request (``X-Request-Id``, or made now); None outside one."""
        return None if self._request is None else self._request.get()

    @request_id.setter
    def request_id(self, value: str | None) -> None:
        self._request = None if value is None else reqid.RequestRef(value)

    @property
    def started(self) -> float:
        return self._started

    @property
    def ended(self) -> float | None:
        return self._ended

    @property
    def plan(self) -> RoutePlan | None:
        return self._plan

    @property
    def outcome(self) -> Outcome | None:
        """The dispatch record: provider, transport, upstream latency, failed attempts."""
        return self._outcome

    @classmethod
    def start(cls, target: Target, method: str, transport: str = "http") -> CallMeta:
        return cls(
            target.chain.name,
            method,
            trio.current_time(),
            profile=target.profile,
            transport=transport,
        )

    def planned(self, plan: RoutePlan, outcome: Outcome) -> None:
        self._plan, self._outcome = plan, outcome

    def finish(self) -> None:
        self._ended = trio.current_time()

    def to_dict(self, request_id: str) -> dict[str, Any]:
        end_to_end_ms = ((self._ended or trio.current_time()) - self._started) * 1000
        meta: dict[str, Any] = {
            "version": "1.0",
            "request_id": request_id,
            "chain": self.chain,
            "method": self.method,
            "end_to_end_latency_ms": round(end_to_end_ms, 3),
        }
        if self.cache is not None:
            meta["cache"] = self.cache
        if self._plan is None or self._outcome is None:
            meta["served_by"] = "lasso"
            return meta
        outcome = self._outcome
        meta["strategy"] = self._plan.strategy.value
        meta["candidate_providers"] = self._plan.candidate_names()
        meta["retries"] = len(outcome.attempts)
        meta["circuit_breaker_state"] = outcome.breaker_state
        if outcome.attempts:  # the failed ones: a node error every provider gave lands here
            meta["attempts"] = [msgspec.structs.asdict(a) for a in outcome.attempts]
        if outcome.provider is not None:
            upstream_ms = (outcome.upstream_latency_us or 0) / 1000
            meta["transport"] = outcome.transport
            meta["selected_provider"] = {"id": outcome.provider, "protocol": outcome.transport}
            meta["upstream_latency_ms"] = round(upstream_ms, 3)
            meta["overhead_ms"] = round(end_to_end_ms - upstream_ms, 3)
        return meta
