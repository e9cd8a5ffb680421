"""The gateway: from a request path and body to the bytes of the answer.

Transport-agnostic. Both client endpoints call :meth:`Gateway.resolve` once per
route: the HTTP fast path (``lasso.web.asgi``) per request, the WebSocket endpoint
(``lasso.web.ws``) once at the handshake. Then HTTP calls :meth:`Gateway.answer_body`
per body, and the WebSocket endpoint :meth:`Gateway.parse` and
:meth:`Gateway.answer_parsed` per frame, passing the connection's :class:`Session`,
which answers ``eth_subscribe`` and ``eth_unsubscribe``. ``resolve`` and ``parse``
raise a :class:`~lasso.errors.LassoError` for the front end to answer; past them,
every failure becomes a JSON-RPC error here and nothing else escapes to the front end.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Protocol

import msgspec
import trio

from lasso import redact
from lasso.activity import Activity
from lasso.cache import ResponseCache
from lasso.callmeta import CallMeta
from lasso.chain import ChainRuntime, TransportFactory
from lasso.config import (
    DEFAULT_PROFILE,
    ChainConfig,
    ProviderConfig,
    Settings,
    WebSocketConfig,
)
from lasso.core import jsonrpc
from lasso.core.filter_params import FILTER_METHODS
from lasso.core.filter_table import FilterTableStatistics
from lasso.core.jsonrpc import BadItem, Call, Item
from lasso.core.methods import Allowlist, Disposition, disposition, refusal
from lasso.core.routes import RouteSpec
from lasso.core.subs.bounds import check_filter_size
from lasso.dispatch import Outcome, dispatch
from lasso.errors import InternalError, LassoError, UnknownTarget, UpstreamRpcError
from lasso.headfloor import keep_head
from lasso.logs import Route, get_logs
from lasso.opsevents import OpsEvents
from lasso.pubsub import EventBus
from lasso.sharedstate import SharedStore
from lasso.transactions import SEND_RAW, send_raw_transaction
from lasso.upstream.provider import request_headers
from lasso.upstream.ws import Connector, WsConnection, WsPolicy

log = logging.getLogger("lasso.gateway")


class Session(Protocol):
    """A client WebSocket's subscriptions: answers eth_subscribe and eth_unsubscribe."""

    async def handle(self, call: Call) -> bytes: ...


Forward = Callable[[Call], Awaitable[bytes]]


class Filters(Protocol):
    """The gateway-served stateful filters (``lasso.filters``): answers the methods in
    ``FILTER_METHODS``; ``forward`` runs a call (``eth_getLogs``) the normal way."""

    async def handle(self, target: Target, call: Call, forward: Forward) -> bytes: ...

    def statistics(self) -> FilterTableStatistics: ...


Profiles = Mapping[str, Mapping[str, ChainRuntime]]


class Snapshot(msgspec.Struct, frozen=True):
    """The settings and the chains of one config generation. A reload publishes a new
    one (``lasso.registry``). A route resolves against the snapshot current then and
    keeps its chain object to the end (a removed provider drains, never a ``KeyError``);
    each call reads the settings current when it starts."""

    generation: int
    settings: Settings
    profiles: Profiles
    allowed: Allowlist


class Target(msgspec.Struct, frozen=True):
    """A resolved route: which chain runtime, with which overrides."""

    chain: ChainRuntime
    route: RouteSpec
    path: str
    provider: str | None
    transport: str | None = None
    profile: str = DEFAULT_PROFILE
    client: str | None = None  # the client's remote address (per-client filter bounds)
    no_cache: bool = False  # the client sent ``Cache-Control: no-cache`` (lasso.cache)


class Answer(msgspec.Struct, frozen=True):
    """The answer to one body: each part is one response object, with its meta."""

    status: int
    parts: list[bytes]
    metas: list[CallMeta | None]
    batch: bool = False

    @classmethod
    def error(cls, exc: LassoError) -> Answer:
        exc = redact.scrub_error(exc)  # may quote the request's path: a client key
        return cls(exc.status(), [jsonrpc.lasso_error_body(exc.reply_id, exc)], [None])

    def body(self) -> bytes:
        if not self.parts:
            return b""
        return jsonrpc.batch_body(self.parts) if self.batch else self.parts[0]


def bus_key(profile: str, chain: str) -> str:
    """The chain's name on the event bus: unique across profiles."""
    return chain if profile == DEFAULT_PROFILE else f"{profile}/{chain}"


def ws_policy(config: WebSocketConfig) -> WsPolicy:
    return WsPolicy(
        reconnect_base_s=config.reconnect_base_ms / 1000,
        reconnect_cap_s=config.reconnect_cap_ms / 1000,
        ping_interval_s=config.ping_interval_ms / 1000,
        pong_timeout_s=config.pong_timeout_ms / 1000,
        max_pending=config.max_pending,
        stable_after_s=config.stable_after_ms / 1000,
        connect_timeout_s=config.connect_timeout_ms / 1000,
        max_message_bytes=config.max_message_bytes,
    )


class Gateway:
    """Owns one :class:`ChainRuntime` per (profile, chain)."""

    def __init__(
        self,
        settings: Settings,
        *,
        rng: random.Random | None = None,
        transports: TransportFactory | None = None,
        connector: Connector | None = None,
    ) -> None:
        self.rng = rng or random.Random()
        self.started_monotonic = time.monotonic()
        self.bus = EventBus()
        #: Operator events and request observers (logs, metrics, dashboard).
        self.events = OpsEvents()
        #: State shared with other workers and instances ([shared] redis_url), else None.
        self.shared: SharedStore | None = None
        #: Calls in flight and client WebSockets open (``/metrics``).
        self.activity = Activity()
        self._ws_policy = ws_policy(settings.websocket)
        self._connector = connector
        self._transports = transports
        #: The response cache (``lasso.cache``): every chain's entries and reorg ledgers.
        self.cache = ResponseCache(settings.cache)
        #: Where the chains' providers run (``lasso.daemon.open_gateway`` sets it).
        self.services: trio.Nursery | None = None
        #: Serves eth_newFilter and kin (``lasso.filters.open_filters`` sets it).
        self.filters: Filters | None = None
        self.snapshot = Snapshot(
            generation=1,
            settings=settings,
            profiles={
                slug: {
                    name: self.build_chain(slug, name, chain, settings)
                    for name, chain in profile.chains.items()
                }
                for slug, profile in settings.profiles.items()
            },
            allowed=Allowlist.parse(settings.server.allow_methods),  # node-admin methods
        )

    @property
    def settings(self) -> Settings:
        """The current snapshot's settings."""
        return self.snapshot.settings

    @property
    def profiles(self) -> Profiles:
        return self.snapshot.profiles

    @property
    def allowed(self) -> Allowlist:
        return self.snapshot.allowed

    def publish(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` current: requests resolved from now on run on it."""
        self._ws_policy = ws_policy(snapshot.settings.websocket)  # WebSockets opened from now
        self.snapshot = snapshot

    def build_chain(
        self, slug: str, name: str, chain: ChainConfig, settings: Settings
    ) -> ChainRuntime:
        """A chain runtime for (profile, chain), not started (see ``ChainRuntime.start``)."""
        runtime = ChainRuntime(
            name,
            chain,
            routing=settings.routing,
            rng=self.rng,
            transports=self._transports,
            websockets=partial(self._websocket, bus_key(slug, name)),
            route_ws=settings.websocket.route_unary,
            label=f"{slug}/{name}",
            profile=slug,
            events=self.events,
        )
        runtime.head_listeners.append(partial(self.cache.observe_head, bus_key(slug, name)))
        return runtime

    def _websocket(self, key: str, _name: str, config: ProviderConfig) -> WsConnection:
        assert config.ws_url is not None
        return WsConnection(
            config.ws_url,
            request_headers(config),
            provider_id=config.id,
            chain=key,
            bus=self.bus,
            policy=self._ws_policy,
            rng=self.rng,
            connect=self._connector,
        )

    def chains(self) -> list[tuple[str, ChainRuntime]]:
        return [(slug, c) for slug, chains in self.profiles.items() for c in chains.values()]

    def resolve(
        self,
        route: RouteSpec,
        path: str,
        provider_header: str | None = None,
        transport: str | None = None,
        *,
        client: str | None = None,
    ) -> Target:
        """Find the chain a route names, or raise :class:`UnknownTarget`."""
        snapshot = self.snapshot
        slug = route.profile or DEFAULT_PROFILE
        profile = snapshot.settings.profile(slug)
        if profile is None:
            raise UnknownTarget(f"Profile '{slug}' not found", http_status=404)
        config = profile.resolve_chain(route.chain)
        if config is None:
            raise UnknownTarget(f"Unsupported chain: unknown chain '{route.chain}'")
        chain = snapshot.profiles[slug][config.name]
        provider = route.provider or provider_header or None
        if provider is not None and provider not in chain.providers:
            raise UnknownTarget(
                f"Provider '{provider}' is not configured for chain '{config.name}'"
            )
        if transport not in (None, "http", "ws"):
            raise UnknownTarget(f"Unknown transport '{transport}': use http or ws")
        return Target(
            chain=chain,
            route=route,
            path=path,
            provider=provider,
            transport=transport,
            profile=slug,
            client=client,
        )

    async def answer_body(self, target: Target, body: bytes) -> Answer:
        """Answer one HTTP body: a single call or a batch."""
        try:
            parsed = self.parse(body)
        except LassoError as exc:
            return Answer.error(exc)
        return await self.answer_parsed(target, parsed)

    def parse(self, body: bytes) -> Call | list[Item]:
        """Parse a body under the server's batch and nesting limits; raises ``LassoError``."""
        server = self.settings.server
        return jsonrpc.parse_body(body, max_batch=server.max_batch, max_depth=server.max_json_depth)

    async def answer_parsed(
        self, target: Target, parsed: Call | list[Item], session: Session | None = None
    ) -> Answer:
        """Answer a parsed single call or batch; ``session`` serves subscriptions (WS only)."""
        transport = "http" if session is None else "ws"
        if isinstance(parsed, Call):
            meta = CallMeta.start(target, parsed.method, transport)
            answer = await self.answer_call(target, parsed, meta, session)
            if parsed.id is None:
                return Answer(204, [], [])
            return Answer(200, [answer], [meta])
        return await self._answer_batch(target, parsed, session, transport)

    async def _answer_batch(
        self, target: Target, items: list[Item], session: Session | None, transport: str
    ) -> Answer:
        answers: list[bytes | None] = [None] * len(items)
        metas: list[CallMeta | None] = [None] * len(items)
        limiter = trio.CapacityLimiter(self.settings.server.batch_concurrency)

        async def run(index: int, call: Call, meta: CallMeta) -> None:
            async with limiter:
                answer = await self.answer_call(target, call, meta, session)
            if call.id is not None:
                answers[index] = answer

        async with trio.open_nursery() as nursery:
            for index, item in enumerate(items):
                if isinstance(item, BadItem):
                    answers[index] = jsonrpc.lasso_error_body(item.id, item.error)
                    continue
                metas[index] = meta = CallMeta.start(target, item.method, transport)
                nursery.start_soon(run, index, item, meta)
        kept = [(a, m) for a, m in zip(answers, metas, strict=True) if a is not None]
        if not kept:
            return Answer(204, [], [])
        return Answer(200, [a for a, _ in kept], [m for _, m in kept], batch=True)

    async def answer_call(
        self, target: Target, call: Call, meta: CallMeta, session: Session | None = None
    ) -> bytes:
        """Answer one call; the bytes are a complete JSON-RPC response object."""
        client_id = call.id or b"null"
        self.activity.calls += 1  # in flight until the finally below (lasso.activity)
        try:
            result = await self._call(target, call, meta, session)
        except UpstreamRpcError as exc:
            meta.result, meta.code = "node_error", exc.rpc_code
            return jsonrpc.raw_error_body(client_id, redact.current().scrub_known(exc.raw_error))
        except LassoError as exc:
            meta.result, meta.code = "error", exc.code
            return jsonrpc.lasso_error_body(client_id, redact.scrub_error(exc))
        except Exception:
            log.exception("internal error answering %s", call.method)
            meta.result, meta.code = "internal", InternalError.code
            return jsonrpc.lasso_error_body(client_id, InternalError("Internal error"))
        finally:
            self.activity.calls -= 1
            meta.finish()
            self.events.observe(meta)
        return jsonrpc.result_body(client_id, result)

    async def _call(
        self, target: Target, call: Call, meta: CallMeta, session: Session | None
    ) -> bytes:
        snapshot = self.snapshot  # this call runs on the settings current at its start
        disp = disposition(call.method, call.params, snapshot.allowed)
        if target.chain.eligibility.rules(target.chain.config.methods).refuses(call.method):
            disp = Disposition.DENIED  # the chain's [methods] rules: -32601 locally
        if disp is Disposition.LOCAL_CHAIN_ID and target.provider is None:
            return target.chain.chain_id_hex
        if disp is Disposition.WS_ONLY and session is not None:
            return await session.handle(call)
        if disp in (Disposition.BLOCKED, Disposition.WS_ONLY, Disposition.DENIED):
            raise refusal(call.method, disp, target.path)
        srv = snapshot.settings.server  # bound the upstream work one log filter asks for
        check_filter_size(call.method, call.params, srv.max_filter_addresses, srv.max_filter_topics)
        cache = self.cache
        if cache.config is not snapshot.settings.cache:
            cache.reconfigure(snapshot.settings.cache)
        if cache.wants(call.method):
            if target.provider is not None or target.no_cache or self.services is None:
                meta.cache = "bypass"  # a pinned route sees its own provider's answer
            else:
                chain = target.chain
                result, meta.cache = await cache.serve(
                    bus_key(target.profile, chain.name),
                    call.method,
                    call.params,
                    chain.state.consensus_head(trio.current_time()),
                    partial(self._route, target, call, meta, session),
                    self.services,
                    self.shared,
                    head_ttl_ms=max(1, round(chain.state.block_time_ms)),
                )
                return result
        return await self._route(target, call, meta, session)

    async def _route(
        self, target: Target, call: Call, meta: CallMeta, session: Session | None
    ) -> bytes:
        """A call past the refusals and the cache: filters, logs, plan and dispatch."""
        if call.method in FILTER_METHODS and self.filters is not None:
            forward = partial(self._call, target, meta=meta, session=session)
            return await self.filters.handle(target, call, forward)
        chain = target.chain
        if call.method == "eth_getLogs":  # split, merged and capped: lasso.logs
            route = Route(target.route.strategy, target.provider, target.transport)
            return await get_logs(chain, call, meta, route)
        plan = chain.plan(
            call.method,
            trio.current_time(),
            strategy=target.route.strategy,
            provider=target.provider,
            transport=target.transport,
            params=call.params,
        )
        outcome = Outcome()
        meta.planned(plan, outcome)
        if call.method == SEND_RAW:  # idempotent resend and broadcast: lasso.transactions
            return await send_raw_transaction(
                chain, call, plan, outcome, started_at=meta.started, services=self.services
            )
        hedge_after_s = chain.hedge_delay_s(call.method, plan)
        result = await dispatch(
            chain, call, plan, outcome, hedge_after_s=hedge_after_s, started_at=meta.started
        )
        if target.provider is not None:
            return result  # a pinned route gets its provider's own view of the head
        return await keep_head(  # never below a head already answered or delivered
            chain,
            call,
            result,
            strategy=target.route.strategy,
            transport=target.transport,
            outcome=outcome,
            started_at=meta.started,
        )
