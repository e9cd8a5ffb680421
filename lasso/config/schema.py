"""The settings file's schema: one frozen Struct per TOML table.

These Structs mirror the file exactly (what an operator writes). The constraints
live here, in ``msgspec.Meta`` annotations, and are read back by the walker in
``validate.py`` so that every problem is reported with its path, not just the
first. ``model.py`` builds the resolved view the gateway reads (profiles,
chain lookup, merged breaker settings) from a validated ``SettingsFile``.

Constraint conventions understood by the walker, beyond msgspec's own:

- ``Meta(extra={"url_schemes": (...)})`` -- a URL with one of these schemes
  and a host.
- ``Meta(extra={"hint": "..."})`` -- what to say when ``pattern`` fails.
- ``Meta(extra={"secret": True})`` -- never echo the value in a problem.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta

from lasso.config.secrets import mask_url

__all__ = [
    "RESERVED_CHAIN_IDENTS",
    "STRATEGY_NAMES",
    "ApiKeySpec",
    "ChainSpec",
    "CircuitBreakerConfig",
    "CircuitBreakerOverride",
    "FilterConfig",
    "HedgeConfig",
    "MethodRules",
    "ProfileSpec",
    "ProviderConfig",
    "RateOverride",
    "RoutingConfig",
    "ServerConfig",
    "SettingsFile",
    "StrategyName",
    "SubscriptionConfig",
    "WebSocketConfig",
]

StrategyName = Literal["fastest", "load-balanced", "latency-weighted", "round-robin", "priority"]
STRATEGY_NAMES: Final[tuple[StrategyName, ...]] = get_args(StrategyName)

# Words that appear in gateway routes next to a chain, so no chain may be called that.
RESERVED_CHAIN_IDENTS: Final = frozenset({*STRATEGY_NAMES, "provider", "profile"})

SLUG_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]*\Z"
_SLUG_HINT: Final = "must be lowercase letters, digits, '-' or '_', starting with a letter or digit"

Positive = Annotated[int, Meta(ge=1)]
NonNegative = Annotated[int, Meta(ge=0)]
Port = Annotated[int, Meta(ge=1, le=65535)]
NonEmptyStr = Annotated[str, Meta(min_length=1)]
Slug = Annotated[str, Meta(pattern=SLUG_PATTERN, extra={"hint": _SLUG_HINT})]
ProviderId = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z",
        extra={"hint": "must be letters, digits, '.', '-' or '_', starting with a letter or digit"},
    ),
]
MethodName = Annotated[
    str,
    Meta(pattern=r"^[A-Za-z0-9_]+\Z", extra={"hint": "must be a JSON-RPC method name"}),
]
MethodPattern = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_]+\*?\Z",
        extra={"hint": "must be a method name, or a method-name prefix ending in *"},
    ),
]
HeaderName = Annotated[
    str,
    Meta(
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z",
        extra={"hint": "must be a valid HTTP header name"},
    ),
]
_ONE_LINE = r"^[^\r\n\x00]*\Z"
_ONE_LINE_HINT = "must not contain line breaks or NUL"
HeaderValue = Annotated[
    str, Meta(pattern=_ONE_LINE, extra={"hint": _ONE_LINE_HINT, "secret": True})
]
ApiKey = Annotated[
    str, Meta(min_length=1, pattern=_ONE_LINE, extra={"hint": _ONE_LINE_HINT, "secret": True})
]
HttpUrl = Annotated[str, Meta(extra={"url_schemes": ("http", "https")})]
WsUrl = Annotated[str, Meta(extra={"url_schemes": ("ws", "wss")})]
RedisUrl = Annotated[str, Meta(extra={"url_schemes": ("redis",)})]


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[server]``: the listening socket and request limits."""

    host: NonEmptyStr = "127.0.0.1"
    port: Port = 4000
    max_body_bytes: Positive = 8_000_000
    max_batch: Positive = 50
    batch_concurrency: Positive = 4
    max_meta_header_bytes: Positive = 4096
    shutdown_grace_ms: NonNegative = 10_000
    ws_max_in_flight: Positive = 32
    ws_max_subscriptions: Positive = 128
    ws_max_frame_bytes: Positive = 8_000_000
    ws_idle_timeout_ms: NonNegative = 600_000
    ws_ping_interval_ms: Positive = 30_000
    ws_send_queue: Positive = 4096
    ws_send_timeout_ms: Positive = 10_000
    max_connections: Positive = 10_000
    max_connections_per_ip: NonNegative = 1_000
    http_fast_path: bool = True
    max_ws_connections: Positive = 5_000
    max_inflight_body_bytes: Positive = 64_000_000
    header_timeout_ms: Positive = 10_000
    body_timeout_ms: Positive = 30_000
    max_json_depth: Annotated[int, Meta(ge=2, le=512)] = 64
    max_filter_addresses: Positive = 1_000
    max_filter_topics: Positive = 256
    allow_methods: tuple[MethodPattern, ...] = ()
    trusted_proxies: tuple[NonEmptyStr, ...] = ()
    #: Worker processes sharing the listening socket (lasso.workers); "auto": one per core.
    workers: Positive | Literal["auto"] = 1

    def worker_count(self, cpu_count: int | None) -> int:
        """How many worker processes to run: ``workers``, or ``cpu_count`` (at least 1)
        for ``"auto"``."""
        return max(1, cpu_count or 1) if self.workers == "auto" else self.workers


class HedgeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[routing.hedge]`` / ``[chains.<name>.hedge]``: race a second provider for slow reads.

    Off unless ``after_ms`` is set or ``adaptive`` is true. Only replay-safe methods
    are ever hedged.
    """

    after_ms: Positive | None = None
    adaptive: bool = False
    methods: tuple[MethodName, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.after_ms is not None or self.adaptive


class RoutingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[routing]``: how a request picks and retries providers."""

    default_strategy: StrategyName = "load-balanced"
    max_attempts: Positive = 3
    lw_beta: Annotated[float, Meta(ge=0.0)] = 3.0
    exploration_share: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.05
    method_deadlines_ms: dict[MethodName, Positive] = {}
    hedge: HedgeConfig = msgspec.field(default_factory=HedgeConfig)
    max_logs_block_range: Positive | None = None
    logs_chunk_concurrency: Positive = 4
    capability_ttl_ms: Positive = 3_600_000


class CircuitBreakerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[circuit_breaker]``: when a provider is taken out of rotation and for how long."""

    failure_threshold: Positive = 5
    recovery_timeout_ms: Positive = 60_000
    success_threshold: Positive = 2
    timeout_threshold: Positive = 2
    network_threshold: Positive = 3
    max_recovery_timeout_ms: Positive = 600_000


class CircuitBreakerOverride(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[chains.<name>.circuit_breaker]``: per-key override; unset keys inherit."""

    failure_threshold: Positive | None = None
    recovery_timeout_ms: Positive | None = None
    success_threshold: Positive | None = None
    timeout_threshold: Positive | None = None
    network_threshold: Positive | None = None
    max_recovery_timeout_ms: Positive | None = None

    def apply_to(self, base: CircuitBreakerConfig) -> CircuitBreakerConfig:
        """``base`` with every key this override sets replaced."""
        changes = {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        }
        return msgspec.structs.replace(base, **changes)


class WebSocketConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[websocket]``: every upstream WebSocket connection (providers with ``ws_url``)."""

    ping_interval_ms: Positive = 15_000
    pong_timeout_ms: Positive = 5_000
    reconnect_base_ms: Positive = 500
    reconnect_cap_ms: Positive = 30_000
    connect_timeout_ms: Positive = 10_000
    stable_after_ms: NonNegative = 5_000
    max_pending: Positive = 256
    max_message_bytes: Positive = 16 * 2**20
    route_unary: bool = True


class SubscriptionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[subscriptions]``: the shared upstream subscriptions and their failover."""

    max_backfill_blocks: Positive = 128
    max_replay_blocks: Positive = 128
    teardown_grace_ms: NonNegative = 60_000
    stale_after_blocks: Positive = 3
    min_stale_ms: Positive = 15_000
    max_upstream_per_chain: Positive = 1_000
    max_idle_upstream_per_chain: NonNegative = 64
    max_idle_upstream_per_client: NonNegative = 4


class FilterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[filters]``: the stateful filters (``eth_newFilter`` and kin) the gateway serves."""

    idle_timeout_ms: Positive = 300_000
    max_per_client: Positive = 64
    max_total: Positive = 10_000
    max_buffered_changes: Positive = 10_000


LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class LoggingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[logging]``: the log format, the access log and operator-event lines."""

    #: ``text`` (human lines) or ``json`` (one JSON object per line); see docs/logging.md.
    format: LogFormat = "text"
    #: The level when neither ``--log-level`` nor ``$LASSO_LOG_LEVEL`` is given.
    level: LogLevel | None = None
    #: One ``lasso.access`` line per call (chain, method, provider, result, latencies).
    access_log: bool = False


ClientKey = Annotated[
    str,
    Meta(
        min_length=1,
        pattern=r"^[!-~]+\Z",
        extra={"hint": "must be printable ASCII without spaces", "secret": True},
    ),
]
Sha256Hex = Annotated[
    str,
    Meta(
        pattern=r"^[0-9a-fA-F]{64}\Z",
        extra={"hint": "must be the 64 hex digits of a SHA-256 digest", "secret": True},
    ),
]
Rate = Annotated[float, Meta(ge=0.001)]


class ApiKeySpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[auth.api_keys]]``: one client key, given in the clear (``key``, ``${VAR}``
    allowed) or as the SHA-256 of the key in hex (``sha256``); exactly one of them.
    ``name`` is the client's identity (rate limits, logs, filters); ``rps`` and
    ``burst`` override ``[rate_limit]`` for this key."""

    name: ProviderId
    key: ClientKey | None = None
    sha256: Sha256Hex | None = None
    rps: Rate | None = None
    burst: Positive | None = None

    def __repr__(self) -> str:
        key = None if self.key is None else "***"
        return (
            f"ApiKeySpec(name={self.name!r}, key={key!r}, sha256={self.sha256!r}, "
            f"rps={self.rps!r}, burst={self.burst!r})"
        )


class AuthConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[auth]``: optional client API keys for ``/rpc``, ``/ws/rpc`` and observability.

    Keys are required on ``/rpc`` and ``/ws/rpc`` as soon as ``api_keys`` has one.
    """

    api_keys: tuple[ApiKeySpec, ...] = ()
    protect_observability: bool = False


class RateOverride(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[profiles.<slug>.rate_limit]``: that profile's own token bucket per client."""

    rps: Rate
    burst: Positive | None = None


class RateLimitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[rate_limit]``: the inbound token bucket per client key (API key, else client IP).

    Off unless ``rps`` is set (here, on a profile or on an API key). ``burst``
    defaults to one second's worth. The concurrency caps are off unless set.
    """

    rps: Rate | None = None
    burst: Positive | None = None
    max_ws_per_client: Positive | None = None
    max_inflight_per_client: Positive | None = None
    max_clients: Positive = 50_000


Origin = Annotated[
    str,
    Meta(
        pattern=r"^(\*|[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+)\Z",
        extra={"hint": 'must be "*" or an origin: scheme://host[:port], with no path'},
    ),
]

#: Lasso's own request headers, which a browser script may send once CORS allows it.
CORS_ALLOW_HEADERS: Final[tuple[str, ...]] = (
    "content-type",
    "x-lasso-include-meta",
    "x-lasso-provider",
    "x-lasso-transport",
    "x-lasso-api-key",
    "x-request-id",
)
#: Response headers a browser script may read (beyond the CORS-safelisted ones).
CORS_EXPOSE_HEADERS: Final[tuple[str, ...]] = (
    "x-lasso-meta",
    "x-lasso-request-id",
    "x-request-id",
    "retry-after",
    "x-lasso-cache",
)


class CorsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[cors]``: browser origins allowed to call the gateway directly.

    Off while ``allow_origins`` is empty. See ``lasso/core/cors.py`` and ``docs/cors.md``.
    """

    allow_origins: tuple[Origin, ...] = ()
    allow_headers: tuple[HeaderName, ...] = CORS_ALLOW_HEADERS
    expose_headers: tuple[HeaderName, ...] = CORS_EXPOSE_HEADERS
    max_age_s: NonNegative = 600
    allow_credentials: bool = False


LatencyBucketMs = Annotated[float, Meta(ge=0.001, le=3_600_000)]


#: Latency histogram buckets in milliseconds, for RPC: from a cached answer to a 30 s trace.
DEFAULT_LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
)


class MetricsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[metrics]``: the Prometheus exposition at ``/metrics`` (``lasso.metrics``)."""

    enabled: bool = True
    latency_buckets_ms: Annotated[
        tuple[LatencyBucketMs, ...], Meta(min_length=1, max_length=40)
    ] = DEFAULT_LATENCY_BUCKETS_MS
    extra_methods: Annotated[tuple[MethodName, ...], Meta(max_length=1_000)] = ()


#: A ``[cache] methods`` value: ``"never"``, ``"default"``, or a TTL such as ``"2000ms"``.
CacheMethodPolicy = Annotated[str, Meta(pattern=r"^(never|default|[1-9][0-9]{0,7}ms)$")]


class CacheConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[cache]``: the finality-aware response cache (``lasso.cache``, ``docs/cache.md``)."""

    enabled: bool = True
    max_bytes: NonNegative = 64 * 1024 * 1024
    finality_depth_blocks: NonNegative = 64
    latest: bool = False
    methods: Annotated[dict[MethodName, CacheMethodPolicy], Meta(max_length=1_000)] = msgspec.field(
        default_factory=dict
    )


class SharedConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[shared]``: state shared across workers and instances (Redis, ``lasso.shared``).

    ``redis_url`` (``redis://[[user]:password@]host[:port][/db]``, may use ``${ENV}``;
    its password is a secret, masked everywhere) turns it on. ``timeout_ms`` bounds
    every Redis call: past it the request uses local state. Keys start ``key_prefix``.
    """

    redis_url: RedisUrl | None = None
    timeout_ms: Annotated[int, Meta(ge=1, le=10_000)] = 50
    key_prefix: Annotated[
        str,
        Meta(
            pattern=r"^[A-Za-z0-9:._-]{0,64}\Z",
            extra={"hint": "must be at most 64 letters, digits, ':', '.', '-' or '_'"},
        ),
    ] = "lasso:"

    def __repr__(self) -> str:  # never the password
        url = None if self.redis_url is None else mask_url(self.redis_url)
        return (
            f"SharedConfig(redis_url={url!r}, timeout_ms={self.timeout_ms!r}, "
            f"key_prefix={self.key_prefix!r})"
        )


class MethodRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[methods]`` / ``[profiles.<slug>.methods]`` / ``[chains.<name>.methods]``.

    ``allow`` and ``deny`` are method names or prefixes ending in ``*``; a call the
    rules refuse is answered -32601 locally. ``providers`` maps a method pattern to
    the provider ids that alone may serve it (fail open: if none of them can take
    the call, every provider is tried).
    """

    allow: tuple[MethodPattern, ...] = ()
    deny: tuple[MethodPattern, ...] = ()
    providers: dict[MethodPattern, tuple[ProviderId, ...]] = {}


class ProviderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[chains.<name>.providers]]``: one upstream JSON-RPC endpoint."""

    id: ProviderId
    url: HttpUrl
    ws_url: WsUrl | None = None
    priority: NonNegative = 100
    archival: bool = True
    headers: dict[HeaderName, HeaderValue] = {}
    api_key: ApiKey | None = None
    unsupported_methods: tuple[MethodPattern, ...] = ()
    max_logs_block_range: Positive | None = None
    supports_batch: bool = True
    subscriptions: bool = True
    http_client: Literal["lasso", "httpcore"] = "lasso"

    def __repr__(self) -> str:
        # Never print credentials: URLs are masked, header values and the key hidden.
        headers = dict.fromkeys(self.headers, "***")
        ws_url = None if self.ws_url is None else mask_url(self.ws_url)
        api_key = None if self.api_key is None else "***"
        return (
            f"ProviderConfig(id={self.id!r}, url={mask_url(self.url)!r}, ws_url={ws_url!r}, "
            f"priority={self.priority!r}, archival={self.archival!r}, headers={headers!r}, "
            f"api_key={api_key!r}, unsupported_methods={self.unsupported_methods!r}, "
            f"max_logs_block_range={self.max_logs_block_range!r}, "
            f"supports_batch={self.supports_batch!r}, subscriptions={self.subscriptions!r}, "
            f"http_client={self.http_client!r})"
        )


class ChainSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[chains.<name>]`` as written in the file."""

    chain_id: Positive
    block_time_ms: Positive = 12_000
    aliases: tuple[Slug, ...] = ()
    default_strategy: StrategyName | None = None
    circuit_breaker: CircuitBreakerOverride | None = None
    hedge: HedgeConfig | None = None
    max_lag_blocks: NonNegative = 3
    archival_threshold: Positive = 128
    max_logs_block_range: Positive | None = None
    broadcast_raw_transactions: bool = False
    head_poll_ms: NonNegative | None = None
    methods: MethodRules | None = None
    providers: Annotated[tuple[ProviderConfig, ...], Meta(min_length=1)]


Chains = Annotated[dict[Slug, ChainSpec], Meta(min_length=1)]


class ProfileSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[profiles.<slug>]``: an isolated set of chains."""

    chains: Chains
    methods: MethodRules | None = None
    rate_limit: RateOverride | None = None


class SettingsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole file. Top-level ``chains`` form the profile named ``default``."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    circuit_breaker: CircuitBreakerConfig = msgspec.field(default_factory=CircuitBreakerConfig)
    websocket: WebSocketConfig = msgspec.field(default_factory=WebSocketConfig)
    subscriptions: SubscriptionConfig = msgspec.field(default_factory=SubscriptionConfig)
    filters: FilterConfig = msgspec.field(default_factory=FilterConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    rate_limit: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)
    cors: CorsConfig = msgspec.field(default_factory=CorsConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    cache: CacheConfig = msgspec.field(default_factory=CacheConfig)
    shared: SharedConfig = msgspec.field(default_factory=SharedConfig)
    methods: MethodRules | None = None
    chains: Chains
    profiles: dict[Slug, ProfileSpec] = {}
