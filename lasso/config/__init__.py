"""Lasso's settings: the TOML schema, loading with full problem reports, and lookups.

Public API::

    load_settings(path, *, env=None) -> Settings          # reads the file; raises ConfigError
    parse_settings(text, *, env, source="<string>") -> Settings
    settings_from_dict(tree, *, env, source="<dict>") -> Settings
    Settings.profile(slug) -> Profile | None              # "default" = top-level chains
    Profile.resolve_chain(ident) -> ChainConfig | None    # name, alias or decimal chain id
    ChainConfig.provider(id) -> ProviderConfig | None
    ChainConfig.circuit_breaker                           # top level merged with chain override
    mask_url(url) -> str                                  # for /health and logs
    diff_settings(old, new) -> SettingsDiff               # what a reload must do (diff.py)
    keep_running(old, new) -> Settings                    # new, restart-only keys as in old

See docs/configuration.md for every key.
"""

from lasso.config.diff import (
    ChainChange,
    ChainRef,
    ProviderRetune,
    SettingsDiff,
    diff_settings,
    keep_running,
)
from lasso.config.load import load_settings, parse_settings, settings_from_dict
from lasso.config.model import DEFAULT_PROFILE, ChainConfig, Profile, Settings
from lasso.config.problems import ConfigError, ConfigProblem
from lasso.config.schema import (
    STRATEGY_NAMES,
    ChainSpec,
    CircuitBreakerConfig,
    CircuitBreakerOverride,
    HedgeConfig,
    ProfileSpec,
    ProviderConfig,
    RoutingConfig,
    ServerConfig,
    SettingsFile,
    StrategyName,
    SubscriptionConfig,
    WebSocketConfig,
)
from lasso.config.secrets import mask_url

__all__ = [
    "DEFAULT_PROFILE",
    "STRATEGY_NAMES",
    "ChainChange",
    "ChainConfig",
    "ChainRef",
    "ChainSpec",
    "CircuitBreakerConfig",
    "CircuitBreakerOverride",
    "ConfigError",
    "ConfigProblem",
    "HedgeConfig",
    "Profile",
    "ProfileSpec",
    "ProviderConfig",
    "ProviderRetune",
    "RoutingConfig",
    "ServerConfig",
    "Settings",
    "SettingsDiff",
    "SettingsFile",
    "StrategyName",
    "SubscriptionConfig",
    "WebSocketConfig",
    "diff_settings",
    "keep_running",
    "load_settings",
    "mask_url",
    "parse_settings",
    "settings_from_dict",
]
