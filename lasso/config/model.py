"""The resolved settings the gateway reads.

Built once from a validated ``SettingsFile``: the top-level chains become the
profile ``default``, each chain's strategy and breaker settings are resolved
(chain value, else the top-level one), and the per-request lookups (profile by
slug, chain by name/alias/decimal id, provider by id) are dictionaries filled in
at construction, so each is one hash lookup.

The Structs use ``dict=True`` so those lookup tables live in ``cached_property``
slots outside the fields: they are not compared, encoded or printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Final

import msgspec

from lasso.config.schema import (
    AuthConfig,
    CacheConfig,
    ChainSpec,
    CircuitBreakerConfig,
    CorsConfig,
    FilterConfig,
    HedgeConfig,
    LoggingConfig,
    MethodRules,
    MetricsConfig,
    ProviderConfig,
    RateLimitConfig,
    RateOverride,
    RoutingConfig,
    ServerConfig,
    SettingsFile,
    SharedConfig,
    StrategyName,
    SubscriptionConfig,
    WebSocketConfig,
)

__all__ = ["DEFAULT_PROFILE", "ChainConfig", "Profile", "Settings", "build_settings"]

DEFAULT_PROFILE: Final = "default"


class ChainConfig(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """One chain of one profile, with inherited values already applied.

    ``default_strategy`` is the chain's own or else ``[routing]``'s, and
    ``circuit_breaker`` is the top-level table with the chain's overrides merged in.
    """

    name: str
    chain_id: int
    block_time_ms: int
    aliases: tuple[str, ...]
    default_strategy: StrategyName
    circuit_breaker: CircuitBreakerConfig
    hedge: HedgeConfig
    max_lag_blocks: int = 3
    archival_threshold: int = 128
    max_logs_block_range: int | None = None
    broadcast_raw_transactions: bool = False
    head_poll_ms: int | None = None
    methods: MethodRules = MethodRules()
    providers: tuple[ProviderConfig, ...]

    def __post_init__(self) -> None:
        _ = self._providers_by_id  # build the lookup now, at load, not on a request

    @cached_property
    def _providers_by_id(self) -> dict[str, ProviderConfig]:
        return {provider.id: provider for provider in self.providers}

    def provider(self, provider_id: str) -> ProviderConfig | None:
        """The provider with this id, if the chain has one."""
        return self._providers_by_id.get(provider_id)


class Profile(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """An isolated set of chains, picked by its slug; ``chains`` is keyed by name."""

    slug: str
    chains: Mapping[str, ChainConfig]
    rate_limit: RateOverride | None = None  # its own inbound limit; else [rate_limit]

    def __post_init__(self) -> None:
        _ = self._chains_by_ident  # build the lookup now, at load, not on a request

    @cached_property
    def _chains_by_ident(self) -> dict[str, ChainConfig]:
        index: dict[str, ChainConfig] = {}
        for chain in self.chains.values():
            index[str(chain.chain_id)] = chain
            index.update(dict.fromkeys(chain.aliases, chain))
        # Names win over aliases and ids (validation forbids collisions anyway).
        index.update(self.chains)
        return index

    def resolve_chain(self, ident: str) -> ChainConfig | None:
        """The chain named ``ident``, aliased ``ident``, or with decimal chain id ``ident``."""
        return self._chains_by_ident.get(ident)


class Settings(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """Everything the gateway is configured with. Replace it whole; never mutate it."""

    server: ServerConfig
    routing: RoutingConfig
    circuit_breaker: CircuitBreakerConfig
    websocket: WebSocketConfig
    subscriptions: SubscriptionConfig
    filters: FilterConfig
    logging: LoggingConfig
    auth: AuthConfig
    rate_limit: RateLimitConfig
    cors: CorsConfig
    metrics: MetricsConfig
    cache: CacheConfig
    shared: SharedConfig
    profiles: Mapping[str, Profile]

    @property
    def default_profile(self) -> Profile:
        return self.profiles[DEFAULT_PROFILE]

    def profile(self, slug: str) -> Profile | None:
        """The profile with this slug; the top-level chains are ``"default"``."""
        return self.profiles.get(slug)


def build_settings(file: SettingsFile) -> Settings:
    """Resolve a validated file into ``Settings``."""
    specs = {DEFAULT_PROFILE: (file.chains, file.methods, None)} | {
        slug: (profile.chains, profile.methods or file.methods, profile.rate_limit)
        for slug, profile in file.profiles.items()
    }
    profiles = {
        slug: Profile(
            slug=slug,
            chains={name: _chain(name, spec, file, rules) for name, spec in chains.items()},
            rate_limit=rate_limit,
        )
        for slug, (chains, rules, rate_limit) in specs.items()
    }
    return Settings(
        server=file.server,
        routing=file.routing,
        circuit_breaker=file.circuit_breaker,
        websocket=file.websocket,
        subscriptions=file.subscriptions,
        filters=file.filters,
        logging=file.logging,
        auth=file.auth,
        rate_limit=file.rate_limit,
        cors=file.cors,
        metrics=file.metrics,
        cache=file.cache,
        shared=file.shared,
        profiles=profiles,
    )


def merge_rules(outer: MethodRules | None, inner: MethodRules | None) -> MethodRules:
    """A chain's method rules: its profile's (``outer``) with its own (``inner``) on top.

    Denials add up; the chain's allow list, when it has one, replaces the profile's;
    provider preferences merge, the chain's winning for the same pattern.
    """
    outer, inner = outer or MethodRules(), inner or MethodRules()
    return MethodRules(
        allow=inner.allow or outer.allow,
        deny=tuple(dict.fromkeys((*outer.deny, *inner.deny))),
        providers=outer.providers | inner.providers,
    )


def _chain(
    name: str, spec: ChainSpec, file: SettingsFile, rules: MethodRules | None
) -> ChainConfig:
    breaker = file.circuit_breaker
    if spec.circuit_breaker is not None:
        breaker = spec.circuit_breaker.apply_to(breaker)
    return ChainConfig(
        name=name,
        chain_id=spec.chain_id,
        block_time_ms=spec.block_time_ms,
        aliases=spec.aliases,
        default_strategy=spec.default_strategy or file.routing.default_strategy,
        circuit_breaker=breaker,
        hedge=spec.hedge or file.routing.hedge,
        max_lag_blocks=spec.max_lag_blocks,
        archival_threshold=spec.archival_threshold,
        max_logs_block_range=spec.max_logs_block_range or file.routing.max_logs_block_range,
        broadcast_raw_transactions=spec.broadcast_raw_transactions,
        head_poll_ms=spec.head_poll_ms,
        methods=merge_rules(rules, spec.methods),
        providers=spec.providers,
    )
