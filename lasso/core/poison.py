"""Queries of death: a request that crashes every node it reaches.

Theory of operation. A request that kills the node serving it (anvil panics on
``eth_feeHistory`` with a block count of 2**64 or more, and exits) looks to the
gateway like an ordinary provider failure: the connection is lost after the
request was sent. A replay-safe method fails over, so one client request would
crash every provider of the chain in turn. Two rules contain it:

* **Per request** (:meth:`PoisonGuard.lost`): a request may lose the connection
  mid-request (sent, then reset or closed: :func:`lost_mid_request`) on at most
  :data:`MAX_LOST_PROVIDERS` distinct providers. Losing the first fails over as
  before (one flaky provider stays invisible to the client); losing the second
  stops the request: no third provider sees it. A connection refused (the
  request never left) or a timeout is not such a loss and keeps its own rules.
* **Quarantine**: the request that stopped so is quarantined by its fingerprint
  (:func:`fingerprint`: method and canonical params, in the chain's own guard, so
  the chain is part of it) for ``quarantine_s``; meanwhile the same request is
  refused at once (:meth:`PoisonGuard.refused_for`) without reaching a provider.
  The table is bounded (least recently used out first).

One exemption keeps this from hurting bystanders. When a node crashes, every
request in flight on it loses its connection, and one that failed over to the
next node at the same moment as the query of death loses that one too: from the
wire the two are the same. A request answered successfully within the last
``quarantine_s`` (:meth:`PoisonGuard.answered`, a bounded memory of recent
answers, by exact method and params) cannot be the one that crashes nodes, so it
is never stopped or quarantined for lost connections: it fails over as before.
Without this, a query of death sent amid busy traffic would quarantine the
popular requests that were in flight (``eth_blockNumber`` for ten minutes).

A second keeps an outage from quarantining requests: a loss only counts against a
request if the provider was working when the request was sent to it
(:meth:`PoisonGuard.counts`). A provider seen failing (a connection lost or refused,
a timeout, its WebSocket dropped: :meth:`PoisonGuard.failing`) less than
:data:`FAILING_WINDOW_S` before the request was sent, and not seen working since (an
answer to a request sent after the failure, its WebSocket reconnected:
:meth:`PoisonGuard.working`), was broken before the request reached it: the request
cannot have crashed it. When every provider is cut at once (a network outage), a
request in flight on one fails over to the next, which is already known to be down
(every WebSocket dropped with the rest); it used to count as losing two providers and
was refused for ten minutes after the providers came back (a client's
``eth_getBlockByHash`` of a fresh block, say). A query of death still loses two
*working* providers and stops there; at most it also reaches providers that were
failing anyway (the healthy ones are what the rule protects).

Pure: the shell passes ``now``.
"""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec

from lasso.errors import UpstreamError, UpstreamNetworkError

__all__ = [
    "ANSWERED_ENTRIES",
    "FAILING_WINDOW_S",
    "MAX_ENTRIES",
    "MAX_LOST_PROVIDERS",
    "QUARANTINE_S",
    "PoisonGuard",
    "PoisonStatistics",
    "fingerprint",
    "lost_mid_request",
]

#: Distinct providers a request may lose the connection to, mid-request, before it stops.
MAX_LOST_PROVIDERS: Final = 2
#: How long a request that lost two providers is refused.
QUARANTINE_S: Final = 600.0
#: Quarantined fingerprints kept at most (least recently used out first).
MAX_ENTRIES: Final = 1024
#: Recently answered requests remembered at most (least recently answered out first).
ANSWERED_ENTRIES: Final = 4096
#: A provider seen failing this recently (and not answering since) was already broken when
#: a request was sent to it: losing it does not count against the request.
FAILING_WINDOW_S: Final = 5.0


def lost_mid_request(exc: UpstreamError) -> bool:
    """The connection was lost after the request was sent (a reset or EOF mid-request).

    Not a refused connection (never sent) and not a timeout: those keep their rules.
    """
    return isinstance(exc, UpstreamNetworkError) and not exc.never_sent


def fingerprint(method: str, params: bytes) -> bytes:
    """A request's identity for the quarantine: method and canonical params, hashed.

    Canonical: decoded and re-encoded with sorted keys and no whitespace, so spacing
    and key order do not make a new request; params msgspec cannot hold (a number
    past a double) are only stripped of whitespace. 16 bytes, whatever the size.
    """
    digest = hashlib.blake2b(method.encode(), digest_size=16)
    digest.update(b"\n")
    digest.update(_canonical(params))
    return digest.digest()


def _canonical(params: bytes) -> bytes:
    try:
        return msgspec.json.encode(msgspec.json.decode(params), order="sorted")
    except (msgspec.DecodeError, msgspec.EncodeError):
        pass
    try:
        return msgspec.json.format(params, indent=-1)
    except msgspec.DecodeError:
        return params.strip()


class PoisonStatistics(msgspec.Struct, frozen=True):
    """What ``/health`` shows per chain."""

    #: Fingerprints refused right now.
    quarantined_now: int
    #: Requests stopped after losing two providers (each quarantined), since start.
    stopped: int
    #: Requests refused because their fingerprint was quarantined, since start.
    refused: int
    #: Requests that lost two providers but had been answered recently, so went on.
    exempted: int


class PoisonGuard:
    """One chain's quarantine of requests that crash nodes (see the module docstring)."""

    def __init__(
        self,
        *,
        quarantine_s: float = QUARANTINE_S,
        max_entries: int = MAX_ENTRIES,
        answered_entries: int = ANSWERED_ENTRIES,
    ) -> None:
        if quarantine_s <= 0 or max_entries < 1 or answered_entries < 0:
            raise ValueError("quarantine_s and max_entries must be positive, answered_entries >= 0")
        self.quarantine_s = quarantine_s
        self._max_entries = max_entries
        self._answered_entries = answered_entries
        #: fingerprint -> when its quarantine ends; insertion order is recency of use.
        self._until: dict[bytes, float] = {}
        #: hash of (method, params) -> when it was last answered; order is recency.
        self._answered: dict[int, float] = {}
        #: provider id -> when it was last seen failing (dropped once it answers again).
        self._failed_at: dict[str, float] = {}
        self._stopped = self._refused = self._exempted = 0

    def refused_for(self, method: str, params: bytes, now: float) -> float | None:
        """Seconds left if this request is quarantined (and counts the refusal), else None.

        Free while nothing is quarantined: the fingerprint is computed only then.
        """
        if not self._until:
            return None
        key = fingerprint(method, params)
        until = self._until.pop(key, None)
        if until is None:
            return None
        if until <= now:
            return None  # expired: it may be tried again
        self._until[key] = until  # used: most recent now
        self._refused += 1
        return until - now

    def answered(self, method: str, params: bytes, now: float) -> None:
        """A provider answered this request: it is no query of death (for a while)."""
        if not self._answered_entries:
            return
        key = hash((method, params))
        self._answered.pop(key, None)
        self._answered[key] = now
        if len(self._answered) > self._answered_entries:
            del self._answered[next(iter(self._answered))]

    def failing(self, provider_id: str, now: float) -> None:
        """``provider_id`` was seen failing: a connection lost or refused, a timeout, or
        its WebSocket dropped."""
        self._failed_at[provider_id] = now

    def working(self, provider_id: str, sent_at: float) -> None:
        """``provider_id`` answered a request sent at ``sent_at``: if that was after its
        last failure, it works again."""
        if self._failed_at:  # free while no provider is failing
            failed_at = self._failed_at.get(provider_id)
            if failed_at is not None and failed_at <= sent_at:
                del self._failed_at[provider_id]

    def counts(self, provider_id: str, sent_at: float) -> bool:
        """Whether losing ``provider_id`` mid-request would count against a request sent to
        it at ``sent_at``: not if the provider was already failing then (see the module
        docstring). Asked as the request is sent (failures seen later do not clear it:
        the request may have caused them), before the answer or the loss is recorded."""
        if not self._failed_at:  # free while no provider is failing
            return True
        failed_at = self._failed_at.get(provider_id)
        return failed_at is None or not (sent_at - FAILING_WINDOW_S <= failed_at <= sent_at)

    def lost(self, method: str, params: bytes, providers_lost: int, now: float) -> bool:
        """This request has lost the connection mid-request to ``providers_lost`` distinct
        providers (those that :meth:`counts`); True if it must stop here, and then it is
        quarantined."""
        if providers_lost < MAX_LOST_PROVIDERS:
            return False
        answered_at = self._answered.get(hash((method, params)))
        if answered_at is not None and now - answered_at < self.quarantine_s:
            self._exempted += 1
            return False
        self._quarantine(fingerprint(method, params), now)
        self._stopped += 1
        return True

    def _quarantine(self, key: bytes, now: float) -> None:
        self._until.pop(key, None)
        self._until[key] = now + self.quarantine_s
        for stale in [k for k, until in self._until.items() if until <= now]:
            del self._until[stale]
        while len(self._until) > self._max_entries:
            del self._until[next(iter(self._until))]

    def statistics(self, now: float) -> PoisonStatistics:
        return PoisonStatistics(
            quarantined_now=sum(1 for until in self._until.values() if until > now),
            stopped=self._stopped,
            refused=self._refused,
            exempted=self._exempted,
        )
