"""What a reload does with each settings key: the one table, with the reason for each.

Every field of every settings Struct (the file's schema in ``schema.py`` and the
resolved view in ``model.py``) has a ``Rule`` here, and
``tests/config/test_config_classify.py`` walks the schema and fails on a field
that has none, so a new key cannot be added without deciding how a reload
treats it. ``diff.py`` reads this table; it never names a key itself.

Kinds:

- ``LIVE``: applied to the running state in place, nothing reset (a breaker
  keeps its state and counts and judges the next outcome by the new threshold).
- ``IDENTITY``: part of what the item *is*. A change replaces the item: a
  provider whose URL changed is a removal plus an addition, a chain whose
  chain id changed is a different network (removed and added).
- ``RESTART``: fixed when the process starts. A reload logs "needs restart",
  keeps the running value and lists the key in ``/health`` until a restart.
  Only fields of the top-level tables may be ``RESTART`` (``keep_running`` in
  ``diff.py`` restores them one level deep).
- ``KEY``: names the item; items are matched by it (a provider's ``id``).
- ``NESTED``: a sub-table, classified field by field.
- ``ITEMS``: a collection of named items (profiles, chains, providers), diffed
  item by item by ``KEY``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

import msgspec

from lasso.config.model import ChainConfig, Profile, Settings
from lasso.config.schema import (
    ApiKeySpec,
    AuthConfig,
    CacheConfig,
    ChainSpec,
    CircuitBreakerConfig,
    CircuitBreakerOverride,
    CorsConfig,
    FilterConfig,
    HedgeConfig,
    LoggingConfig,
    MethodRules,
    MetricsConfig,
    ProfileSpec,
    ProviderConfig,
    RateLimitConfig,
    RateOverride,
    RoutingConfig,
    ServerConfig,
    SettingsFile,
    SharedConfig,
    SubscriptionConfig,
    WebSocketConfig,
)

__all__ = ["RULES", "Kind", "Rule", "restart_only_keys", "rule", "section_types"]


class Kind(enum.Enum):
    LIVE = "live"
    IDENTITY = "identity"
    RESTART = "restart"
    KEY = "key"
    NESTED = "nested"
    ITEMS = "items"


class Rule(msgspec.Struct, frozen=True):
    kind: Kind
    why: str


def _live(why: str) -> Rule:
    return Rule(Kind.LIVE, why)


def _restart(why: str) -> Rule:
    return Rule(Kind.RESTART, why)


_NESTED = Rule(Kind.NESTED, "a table; each of its keys is classified on its own")
_PER_REQUEST = _live("read for each request from the settings snapshot it started with")
_NEW_CLIENT_WS = _live(
    "a client WebSocket takes it when it opens; connections already open keep theirs"
)
_BREAKER = _live(
    "breakers keep their state and counts; the next outcome is judged by the new value"
)
_UPSTREAM_WS = _live("each upstream WebSocket reads it at its next use (ping, connect, backoff)")
_SUBSCRIPTIONS = _live("the subscription hub reads it at each decision")
_PROVIDER_IDENTITY = Rule(
    Kind.IDENTITY,
    "where and how the provider is reached: a change is the old provider removed "
    "(it drains) plus a new one added with fresh state",
)

_SERVER: Final[Mapping[str, Rule]] = {
    "host": _restart("the listening socket is bound once, at start"),
    "port": _restart("the listening socket is bound once, at start"),
    "workers": _restart("the worker processes are started once, at start (lasso.workers)"),
    "max_body_bytes": _PER_REQUEST,
    "max_batch": _PER_REQUEST,
    "batch_concurrency": _PER_REQUEST,
    "max_meta_header_bytes": _PER_REQUEST,
    "shutdown_grace_ms": _live("read when a shutdown starts"),
    "ws_max_in_flight": _NEW_CLIENT_WS,
    "ws_max_subscriptions": _NEW_CLIENT_WS,
    "ws_max_frame_bytes": _restart(
        "hypercorn's websocket_max_message_size (twice this) is fixed in its Config at "
        "start; raising ours alone would let hypercorn close a client with a bare 1009 "
        "instead of our -32600"
    ),
    "ws_idle_timeout_ms": _NEW_CLIENT_WS,
    "ws_ping_interval_ms": _restart(
        "hypercorn's websocket_ping_interval, fixed in its Config at start"
    ),
    "ws_send_queue": _NEW_CLIENT_WS,
    "ws_send_timeout_ms": _live("read for each frame sent to a client"),
    "max_connections": _restart(
        "the open-file limit is sized for it once, at start, before the listener opens; "
        "a larger value live could meet EMFILE before its 503"
    ),
    "max_connections_per_ip": _live("read for each new connection; open ones stay"),
    "http_fast_path": _live("read for each new connection; open ones stay"),
    "max_ws_connections": _live("read for each WebSocket handshake; open sessions stay"),
    "max_inflight_body_bytes": _live(
        "the shared body budget is resized; bodies already held stay counted"
    ),
    "header_timeout_ms": _live("read for each request head"),
    "body_timeout_ms": _PER_REQUEST,
    "max_json_depth": _PER_REQUEST,
    "max_filter_addresses": _PER_REQUEST,
    "max_filter_topics": _PER_REQUEST,
    "allow_methods": _live("the allowlist is rebuilt; it decides each call"),
    "trusted_proxies": _live("read for each request and WebSocket handshake (client identity)"),
}

_ROUTING: Final[Mapping[str, Rule]] = {
    "default_strategy": _PER_REQUEST,
    "max_attempts": _PER_REQUEST,
    "lw_beta": _PER_REQUEST,
    "exploration_share": _PER_REQUEST,
    "method_deadlines_ms": _PER_REQUEST,
    "hedge": _NESTED,
    "max_logs_block_range": _PER_REQUEST,
    "logs_chunk_concurrency": _PER_REQUEST,
    "capability_ttl_ms": _live("read when a capability is learned; learned ones keep their expiry"),
}

_FILTERS: Final[Mapping[str, Rule]] = {
    "idle_timeout_ms": _live("the filter table reads it at each expiry sweep"),
    "max_per_client": _live("checked when a filter is created; existing filters stay"),
    "max_total": _live("checked when a filter is created; existing filters stay"),
    "max_buffered_changes": _live("checked as changes arrive for each filter"),
}

# [logging]: the logs helper's keys.
_LOGGING: Final[Mapping[str, Rule]] = {
    "format": _live("the log handler's formatter is swapped; the next line uses it"),
    "level": _live("the root level is set again (unless --log-level was given)"),
    "access_log": _live("the access-log request observer is added or removed"),
}

# [auth]: client API keys (lasso.web.gate reads them for each request and handshake).
_GATE = _live(
    "read for each request and WebSocket handshake; open WebSockets keep the "
    "identity they were accepted with"
)
_AUTH: Final[Mapping[str, Rule]] = {
    "api_keys": Rule(
        Kind.ITEMS,
        "keys are matched by name; a change rebuilds the key ring that checks each request "
        "and handshake; the buckets of keys still configured are kept",
    ),
    "protect_observability": _GATE,
}
_API_KEY: Final[Mapping[str, Rule]] = {
    "name": Rule(Kind.KEY, "names the key: the client identity its buckets are kept by"),
    **dict.fromkeys(("key", "sha256", "rps", "burst"), _GATE),
}

# [rate_limit]: the inbound token buckets.
_BUCKETS = _live("each bucket takes the new rate and burst at its next use; tokens carry over")
_RATE_LIMIT: Final[Mapping[str, Rule]] = {
    "rps": _BUCKETS,
    "burst": _BUCKETS,
    "max_ws_per_client": _live("checked at each WebSocket handshake; open sockets stay"),
    "max_inflight_per_client": _live("checked at each request; requests in flight finish"),
    "max_clients": _live("the bucket table is resized; the least recently used go first"),
}
_RATE_OVERRIDE: Final[Mapping[str, Rule]] = dict.fromkeys(RateOverride.__struct_fields__, _BUCKETS)

# [cors]: browser origins.
_CORS: Final[Mapping[str, Rule]] = dict.fromkeys(
    ("allow_origins", "allow_headers", "expose_headers", "max_age_s", "allow_credentials"),
    _live("the CORS answers are recomputed at the next request after the reload"),
)

# [metrics]: the Prometheus exposition.
_METRICS: Final[Mapping[str, Rule]] = {
    "enabled": _restart("the request observers and /metrics are set up once, at start"),
    "latency_buckets_ms": _restart("a histogram's buckets are fixed when it is created"),
    "extra_methods": _restart("the method labels are fixed when the metrics are created"),
}

# [cache]: the response cache.
_CACHE: Final[Mapping[str, Rule]] = {
    "enabled": _PER_REQUEST,
    "max_bytes": _live("the bound is applied at the next call: least recently used go first"),
    "finality_depth_blocks": _PER_REQUEST,
    "latest": _PER_REQUEST,
    "methods": _PER_REQUEST,
}

# [shared]: state shared across workers and instances.
_SHARED: Final[Mapping[str, Rule]] = dict.fromkeys(
    ("redis_url", "timeout_ms", "key_prefix"),
    _restart("the Redis store is created once, at start (lasso.shared)"),
)

_METHODS: Final[Mapping[str, Rule]] = dict.fromkeys(("allow", "deny", "providers"), _PER_REQUEST)

_HEDGE: Final[Mapping[str, Rule]] = dict.fromkeys(("after_ms", "adaptive", "methods"), _PER_REQUEST)

_BREAKER_FIELDS = CircuitBreakerConfig.__struct_fields__
_BREAKERS: Final[Mapping[str, Rule]] = dict.fromkeys(_BREAKER_FIELDS, _BREAKER)

_WEBSOCKET: Final[Mapping[str, Rule]] = {
    "ping_interval_ms": _UPSTREAM_WS,
    "pong_timeout_ms": _UPSTREAM_WS,
    "reconnect_base_ms": _UPSTREAM_WS,
    "reconnect_cap_ms": _UPSTREAM_WS,
    "connect_timeout_ms": _UPSTREAM_WS,
    "stable_after_ms": _UPSTREAM_WS,
    "max_pending": _live("checked for each request sent over an upstream WebSocket"),
    "max_message_bytes": _live(
        "each upstream WebSocket takes it at its next connect; open connections keep theirs"
    ),
    "route_unary": _PER_REQUEST,
}

_SUBSCRIPTION_FIELDS = SubscriptionConfig.__struct_fields__
_SUBSCRIPTION: Final[Mapping[str, Rule]] = dict.fromkeys(_SUBSCRIPTION_FIELDS, _SUBSCRIPTIONS)

_PROVIDER: Final[Mapping[str, Rule]] = {
    "id": Rule(Kind.KEY, "names the provider within its chain"),
    "url": _PROVIDER_IDENTITY,
    "ws_url": _PROVIDER_IDENTITY,
    "headers": _PROVIDER_IDENTITY,
    "api_key": _PROVIDER_IDENTITY,
    "priority": _live("retuned in place: the provider keeps its breakers, latency and sockets"),
    "archival": _live("retuned in place: the provider keeps its breakers, latency and sockets"),
    "unsupported_methods": _live("retuned in place: the provider keeps what it learned"),
    "max_logs_block_range": _live("retuned in place: the provider keeps what it learned"),
    "supports_batch": _live("retuned in place: the provider keeps what it learned"),
    "subscriptions": _live(
        "retuned in place: new upstream subscriptions and head tracking read it; "
        "open subscriptions keep their provider until they fail over"
    ),
    "http_client": _PROVIDER_IDENTITY,
}

_CHAIN_COMMON: Final[Mapping[str, Rule]] = {
    "chain_id": Rule(
        Kind.IDENTITY,
        "a different network: the chain is removed and added, nothing carries over",
    ),
    "block_time_ms": _live("lag, staleness and polling read it at their next decision"),
    "aliases": _live("routes resolve chains on the settings snapshot of each request"),
    "default_strategy": _PER_REQUEST,
    "circuit_breaker": _NESTED,
    "hedge": _NESTED,
    "max_lag_blocks": _PER_REQUEST,
    "archival_threshold": _PER_REQUEST,
    "max_logs_block_range": _PER_REQUEST,
    "broadcast_raw_transactions": _PER_REQUEST,
    "head_poll_ms": _live("the reload wakes each head poller, which polls and waits anew"),
    "methods": _NESTED,
    "providers": Rule(Kind.ITEMS, "providers are matched by id"),
}

RULES: Final[Mapping[type[msgspec.Struct], Mapping[str, Rule]]] = {
    # The file as written (schema.py).
    SettingsFile: {
        "server": _NESTED,
        "routing": _NESTED,
        "circuit_breaker": _NESTED,
        "websocket": _NESTED,
        "subscriptions": _NESTED,
        "filters": _NESTED,
        "logging": _NESTED,
        "auth": _NESTED,
        "rate_limit": _NESTED,
        "cors": _NESTED,
        "metrics": _NESTED,
        "cache": _NESTED,
        "shared": _NESTED,
        "methods": _NESTED,
        "chains": Rule(Kind.ITEMS, "the default profile's chains, matched by name"),
        "profiles": Rule(Kind.ITEMS, "profiles are matched by slug"),
    },
    ServerConfig: _SERVER,
    RoutingConfig: _ROUTING,
    HedgeConfig: _HEDGE,
    CircuitBreakerConfig: _BREAKERS,
    CircuitBreakerOverride: dict.fromkeys(CircuitBreakerOverride.__struct_fields__, _BREAKER),
    WebSocketConfig: _WEBSOCKET,
    SubscriptionConfig: _SUBSCRIPTION,
    ProviderConfig: _PROVIDER,
    ChainSpec: _CHAIN_COMMON,
    ProfileSpec: {
        "chains": Rule(Kind.ITEMS, "chains are matched by name"),
        "methods": _NESTED,
        "rate_limit": _NESTED,
    },
    FilterConfig: _FILTERS,
    LoggingConfig: _LOGGING,
    AuthConfig: _AUTH,
    ApiKeySpec: _API_KEY,
    RateLimitConfig: _RATE_LIMIT,
    RateOverride: _RATE_OVERRIDE,
    CorsConfig: _CORS,
    MetricsConfig: _METRICS,
    CacheConfig: _CACHE,
    SharedConfig: _SHARED,
    MethodRules: _METHODS,
    # The resolved view the gateway reads (model.py); the diff walks these.
    Settings: {
        "server": _NESTED,
        "routing": _NESTED,
        "circuit_breaker": _NESTED,
        "websocket": _NESTED,
        "subscriptions": _NESTED,
        "filters": _NESTED,
        "logging": _NESTED,
        "auth": _NESTED,
        "rate_limit": _NESTED,
        "cors": _NESTED,
        "metrics": _NESTED,
        "cache": _NESTED,
        "shared": _NESTED,
        "profiles": Rule(Kind.ITEMS, "profiles are matched by slug"),
    },
    Profile: {
        "slug": Rule(Kind.KEY, "names the profile"),
        "chains": Rule(Kind.ITEMS, "chains are matched by name"),
        "rate_limit": _NESTED,
    },
    ChainConfig: {"name": Rule(Kind.KEY, "names the chain within its profile"), **_CHAIN_COMMON},
}


def rule(struct: type[msgspec.Struct], field: str) -> Rule:
    """The rule for ``struct.field``; a missing one is a bug the classification test catches."""
    try:
        return RULES[struct][field]
    except KeyError:
        raise LookupError(f"{struct.__name__}.{field} has no reload rule in classify.py") from None


def restart_only_keys() -> dict[str, str]:
    """Every restart-only key, as ``table.key`` -> why it needs a restart."""
    out: dict[str, str] = {}
    for section, struct in section_types().items():
        for field, each in RULES[struct].items():
            if each.kind is Kind.RESTART:
                out[f"{section}.{field}"] = each.why
    return out


def section_types() -> dict[str, type[msgspec.Struct]]:
    """The top-level tables of ``Settings``: name -> Struct type."""
    fields = msgspec.inspect.type_info(Settings).fields  # type: ignore[attr-defined]
    return {f.name: f.type.cls for f in fields if isinstance(f.type, msgspec.inspect.StructType)}
