"""The inbound gate: API keys, rate limits and per-client concurrency caps.

Theory of operation. Every ``/rpc`` request and ``/ws/rpc`` handshake passes
:meth:`Gate.identify` first: it finds the route (and an API key in its last
path segment), checks the API key when ``[auth] api_keys`` has any (a missing
or wrong key is :class:`~lasso.errors.Unauthorized`, 401) and names the client
key (:mod:`lasso.web.identity`). Then the concurrency caps: requests in flight
per client key (:meth:`Gate.http_slot`) and open WebSockets per client key
(:meth:`Gate.ws_slot`); over either, :class:`~lasso.errors.ClientRateLimited`
(429, ``Retry-After: 1``). Then, once the body or frame is parsed,
:meth:`Gate.charge` takes one token per call from the client's bucket
(:mod:`lasso.core.tokenbucket`); HTTP and WebSocket calls of one client key
share the bucket. A refusal answers every call with -32005 and its own id.
With ``[shared] redis_url`` (:mod:`lasso.shared`) the bucket is the one every
worker and instance shares in Redis (:meth:`Gate.rate_refusal_shared`); while
Redis is unreachable or slow, the local bucket decides.

The limit that applies is the API key's own ``rps``/``burst``, else the
profile's ``rate_limit``, else ``[rate_limit]``'s; none set means no limit. A
profile with its own limit has its own bucket per client; the others share one.

Settings are read for each request, so a SIGHUP applies at the next one.
Buckets survive a reload; those of API keys no longer configured are dropped.

Each transition of a client into a limited state (rate, in-flight, ws) is
published once as a :class:`~lasso.opsevents.ClientLimited` event; every
refusal is counted in :meth:`Gate.statistics`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
import trio

from lasso.config import DEFAULT_PROFILE
from lasso.config.schema import AuthConfig
from lasso.core import jsonrpc
from lasso.core.apikeys import KeyEntry, KeyRing, digest
from lasso.core.jsonrpc import BadItem, Call, Item
from lasso.core.routes import RouteSpec, parse_rpc_path, split_path_key
from lasso.core.tokenbucket import BucketTable, Take, default_burst
from lasso.errors import ClientRateLimited, LassoError, Unauthorized, UnknownTarget
from lasso.gateway import Gateway, Target
from lasso.opsevents import ClientLimited, now_stamps
from lasso.web.identity import client_ip_key, presented_key

__all__ = ["Gate", "GateStatistics", "Identity", "is_observability", "refusal_body"]

log = logging.getLogger("lasso.gate")

#: Retry-After for a refusal by a concurrency cap: nothing tells when a slot frees.
CAP_RETRY_MS = 1000


class Identity(msgspec.Struct, frozen=True):
    """Who is calling, and which route: ``path`` is the route without a key segment."""

    client: str
    route: RouteSpec
    path: str
    key: KeyEntry | None = None


class GateStatistics(msgspec.Struct, frozen=True):
    """The gate's counters, for ``/metrics`` and the dashboard."""

    auth_enabled: bool
    denied_auth: int  # requests and handshakes refused 401
    denied_observability: int  # of those, on /metrics, /api/*, /dashboard
    admitted: int  # calls admitted by a bucket (requests or frames)
    refused_rate: int  # requests or frames refused by a bucket
    refused_inflight: int  # HTTP requests refused by max_inflight_per_client
    refused_ws: int  # handshakes refused by max_ws_per_client
    limited_events: int  # ClientLimited events published
    buckets: int  # buckets held now
    max_buckets: int
    limited_clients: int  # buckets whose last take was refused
    evicted: int  # buckets pushed out by the table bound
    inflight_clients: int  # client keys with HTTP requests in flight
    ws_clients: int  # client keys with WebSockets open


def is_observability(path: str) -> bool:
    """``/metrics``, ``/api/...`` and ``/dashboard...``: behind a key with protect_observability."""
    return path in ("/metrics", "/dashboard") or path.startswith(("/api/", "/dashboard/"))


def calls_in(parsed: Call | list[Item]) -> int:
    """Tokens a body costs: one per call (items that are not requests cost nothing)."""
    if isinstance(parsed, Call):
        return 1
    return max(1, sum(1 for item in parsed if isinstance(item, Call)))


def refusal_body(parsed: Call | list[Item], error: LassoError) -> bytes:
    """``error`` for every request of the body, with its own id; a batch stays a batch.

    Notifications get no answer of their own, but an HTTP refusal needs a body: when
    nothing in the body has an id, the answer is one error with a null id.
    """
    if isinstance(parsed, Call):
        return jsonrpc.lasso_error_body(parsed.id, error)
    answers = [
        jsonrpc.lasso_error_body(item.id, item.error if isinstance(item, BadItem) else error)
        for item in parsed
        if isinstance(item, BadItem) or item.id is not None
    ]
    return jsonrpc.batch_body(answers) if answers else jsonrpc.lasso_error_body(None, error)


def ws_refusal(parsed: Call | list[Item], error: LassoError) -> bytes | None:
    """As :func:`refusal_body`, but a frame of notifications only gets no answer."""
    if isinstance(parsed, Call):
        return None if parsed.id is None else jsonrpc.lasso_error_body(parsed.id, error)
    if not any(isinstance(item, BadItem) or item.id is not None for item in parsed):
        return None
    return refusal_body(parsed, error)


class Gate:
    """The per-client admission state of one front end. Settings are the gateway's current."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        rate = gateway.settings.rate_limit
        self.buckets = BucketTable(rate.max_clients)
        self._auth: AuthConfig | None = None
        self._ring = KeyRing(())
        self._inflight: dict[str, int] = {}
        self._ws: dict[str, int] = {}
        self._limited_inflight: set[str] = set()
        self._limited_ws: set[str] = set()
        self.denied_auth = 0
        self.denied_observability = 0
        self.refused_inflight = 0
        self.refused_ws = 0
        self.limited_events = 0
        # Shared buckets ([shared]): counted here, held in Redis; clients limited there.
        self.shared_admitted = 0
        self.shared_refused = 0
        self._limited_shared: set[str] = set()

    # -- API keys -------------------------------------------------------------

    @property
    def ring(self) -> KeyRing:
        """The key ring of the current ``[auth]``; rebuilt (and stale buckets dropped) on change."""
        auth = self.gateway.settings.auth
        if auth is not self._auth:
            self._ring = KeyRing(_entries(auth))
            if self._auth is not None:
                names = self._ring.names
                self.buckets.forget(lambda bucket: _of_removed_key(bucket, names))
            self._auth = auth
        return self._ring

    def _check_key(self, presented: str | None, scope: Mapping[str, Any]) -> KeyEntry:
        entry = None if presented is None else self.ring.match(presented)
        if entry is not None:
            return entry
        self.denied_auth += 1
        reason = "an API key is required" if presented is None else "invalid API key"
        if log.isEnabledFor(logging.DEBUG):  # never the key: who, and why
            log.debug("auth: %s denied (%s)", self._ip_key(scope), reason)
        raise Unauthorized(f"Unauthorized: {reason}")

    def identify(self, scope: Mapping[str, Any], prefix: str) -> Identity:
        """Route, API key and client key of a request or handshake.

        Raises :class:`Unauthorized` (key missing or wrong) before
        :class:`UnknownTarget` (no such route): a client without a key learns nothing.
        """
        path: str = scope["path"]
        ring = self.ring
        headers = scope.get("headers", ())
        query = scope.get("query_string", b"")
        if not ring.enabled:
            route = parse_rpc_path(path, prefix)
            if route is None:
                raise UnknownTarget(f"No such route: {path}", http_status=404)
            return Identity(self._ip_key(scope), route, path)
        split = split_path_key(path, prefix)
        path_key = None if split is None else split[2]
        entry = self._check_key(presented_key(headers, query, path_key), scope)
        if split is None:
            raise UnknownTarget(f"No such route: {path}", http_status=404)
        route, route_path, _ = split
        return Identity(f"key:{entry.name}", route, route_path, entry)

    def shown_path(self, path: str, prefix: str) -> str:
        """``path`` fit for a log line: a key in its last segment replaced by ``***``."""
        split = split_path_key(path, prefix) if self.ring.enabled else None
        return path if split is None or split[2] is None else f"{split[1]}/***"

    def allow_observability(self, scope: Mapping[str, Any]) -> Unauthorized | None:
        """None if ``scope`` may see ``/metrics``, ``/api/*`` or ``/dashboard``; else the 401."""
        if not self.gateway.settings.auth.protect_observability:
            return None
        query = scope.get("query_string", b"")
        try:
            self._check_key(presented_key(scope.get("headers", ()), query, None), scope)
        except Unauthorized as exc:
            self.denied_observability += 1
            return exc
        return None

    def _ip_key(self, scope: Mapping[str, Any]) -> str:
        return client_ip_key(scope, self.gateway.settings.server.trusted_proxies)

    # -- rate limits ----------------------------------------------------------

    def _limit(self, who: Identity, profile: str) -> tuple[float, int, str] | None:
        """(rate, burst, bucket scope) for this client on this profile; None: unlimited."""
        key = who.key
        if key is not None and key.rps is not None:
            return key.rps, key.burst or default_burst(key.rps), ""
        settings = self.gateway.settings
        own = None if profile == DEFAULT_PROFILE else settings.profiles.get(profile)
        if own is not None and own.rate_limit is not None:
            override = own.rate_limit
            return override.rps, override.burst or default_burst(override.rps), profile
        config = settings.rate_limit
        if config.rps is None:
            return None
        return config.rps, config.burst or default_burst(config.rps), ""

    def charge(self, who: Identity, target: Target, parsed: Call | list[Item]) -> bytes | None:
        """Take the body's calls from the client's bucket: None if admitted, else the
        -32005 answer (each call's own id) as a :class:`ClientRateLimited` refusal."""
        error = self.rate_refusal(who, target, calls_in(parsed))
        return None if error is None else refusal_body(parsed, error)

    def rate_refusal(self, who: Identity, target: Target, cost: int) -> ClientRateLimited | None:
        """Take ``cost`` tokens; None if admitted, else the error to answer with."""
        limit = self._limit(who, target.profile)
        if limit is None:
            return None
        rate, burst, scope = limit
        max_clients = self.gateway.settings.rate_limit.max_clients
        if max_clients != self.buckets.max_buckets:
            self.buckets.resize(max_clients)
        take = self.buckets.take((who.client, scope), rate, burst, cost, trio.current_time())
        if take.admitted:
            return None
        if take.entered_limited:
            self._publish(who, target, "rate")
        return ClientRateLimited(
            "Rate limit exceeded: too many requests", retry_after_ms=take.retry_after_ms
        )

    # -- shared rate limits ([shared], issue 12) -------------------------------

    async def rate_refusal_shared(
        self, who: Identity, target: Target, cost: int
    ) -> ClientRateLimited | None:
        """:meth:`rate_refusal` through the bucket every instance shares (``gateway.shared``,
        same rate and burst) while the store is up; the local bucket when there is no store,
        it is down, or it did not answer in time (``take_tokens`` gave ``None``)."""
        shared = self.gateway.shared
        if shared is None or not shared.available:
            return self.rate_refusal(who, target, cost)
        limit = self._limit(who, target.profile)
        if limit is None:
            return None
        rate, burst, scope = limit
        wait = await shared.take_tokens(
            f"bucket:{who.client}:{scope}", rate=rate, burst=burst, cost=cost
        )
        if wait is None:
            return self.rate_refusal(who, target, cost)
        limited = self._limited_shared
        if wait <= 0:
            self.shared_admitted += 1
            limited.discard(who.client)
            return None
        self.shared_refused += 1
        if who.client not in limited:
            if len(limited) >= self.buckets.max_buckets:
                limited.clear()  # bounded like the local table; at worst one more event
            limited.add(who.client)
            self._publish(who, target, "rate")
        return ClientRateLimited(
            "Rate limit exceeded: too many requests",
            retry_after_ms=Take(False, wait).retry_after_ms,
        )

    # -- concurrency caps -----------------------------------------------------

    def http_slot(self, who: Identity, target: Target) -> _Slot:
        """Hold one of the client's in-flight slots (a context manager); entering raises
        :class:`ClientRateLimited` when the client is at ``max_inflight_per_client``."""
        cap = self.gateway.settings.rate_limit.max_inflight_per_client
        return _Slot(self, who, target, cap, "inflight")

    def ws_slot(self, who: Identity, target: Target) -> _Slot:
        """One of the client's WebSocket slots, as :meth:`http_slot` (``max_ws_per_client``)."""
        cap = self.gateway.settings.rate_limit.max_ws_per_client
        return _Slot(self, who, target, cap, "ws")

    def _refuse_slot(self, slot: _Slot) -> ClientRateLimited:
        client = slot.who.client
        limited = self._limited_ws if slot.kind == "ws" else self._limited_inflight
        if slot.kind == "ws":
            self.refused_ws += 1
        else:
            self.refused_inflight += 1
        if client not in limited:
            limited.add(client)
            self._publish(slot.who, slot.target, slot.kind)
        what = "WebSocket connections open" if slot.kind == "ws" else "requests in flight"
        return ClientRateLimited(
            f"Rate limit exceeded: too many {what} for this client (at most {slot.cap})",
            retry_after_ms=CAP_RETRY_MS,
        )

    # -- reporting ------------------------------------------------------------

    def _publish(self, who: Identity, target: Target, limit: str) -> None:
        self.limited_events += 1
        log.debug("client %s over its %s limit", who.client, limit)
        stamps = now_stamps()
        self.gateway.events.publish(
            ClientLimited(
                at=stamps["at"],
                wall=stamps["wall"],
                profile=target.profile,
                chain=target.chain.name,
                client=who.client,
                limit=limit,
            )
        )

    def statistics(self) -> GateStatistics:
        buckets = self.buckets.statistics()
        return GateStatistics(
            auth_enabled=self.ring.enabled,
            denied_auth=self.denied_auth,
            denied_observability=self.denied_observability,
            admitted=buckets.admitted + self.shared_admitted,
            refused_rate=buckets.refused + self.shared_refused,
            refused_inflight=self.refused_inflight,
            refused_ws=self.refused_ws,
            limited_events=self.limited_events,
            buckets=buckets.buckets,
            max_buckets=buckets.max_buckets,
            limited_clients=buckets.limited,
            evicted=buckets.evicted,
            inflight_clients=len(self._inflight),
            ws_clients=len(self._ws),
        )


class _Slot:
    """One held concurrency slot of one client: counted on enter, given back on exit."""

    __slots__ = ("cap", "gate", "held", "kind", "limited", "target", "who")

    def __init__(self, gate: Gate, who: Identity, target: Target, cap: int | None, kind: str):
        self.gate, self.who, self.target, self.cap, self.kind = gate, who, target, cap, kind
        ws = kind == "ws"
        self.held = gate._ws if ws else gate._inflight
        self.limited = gate._limited_ws if ws else gate._limited_inflight

    def __enter__(self) -> None:
        client = self.who.client
        count = self.held.get(client, 0)
        if self.cap is not None and count >= self.cap:
            raise self.gate._refuse_slot(self)
        self.held[client] = count + 1
        if self.limited:
            self.limited.discard(client)

    def __exit__(self, *exc_info: object) -> None:
        client = self.who.client
        left = self.held[client] - 1
        if left:
            self.held[client] = left
        else:
            del self.held[client]


def _entries(auth: AuthConfig) -> list[KeyEntry]:
    return [
        KeyEntry(
            name=spec.name,
            sha256=digest(spec.key or "") if spec.sha256 is None else bytes.fromhex(spec.sha256),
            rps=spec.rps,
            burst=spec.burst,
        )
        for spec in auth.api_keys
    ]


def _of_removed_key(bucket: object, names: frozenset[str]) -> bool:
    """Whether a bucket (``(client key, scope)``) belongs to an API key no longer configured."""
    if not isinstance(bucket, tuple) or not isinstance(bucket[0], str):
        return False
    client: str = bucket[0]
    return client.startswith("key:") and client[4:] not in names
