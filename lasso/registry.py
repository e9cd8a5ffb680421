"""The registry: the gateway's current snapshot, and applying a reload's diff to it.

Theory of operation. The gateway holds one immutable :class:`~lasso.gateway.Snapshot`
(the settings and the profile -> chain map of one config generation); a request
resolves its route against the snapshot current at its start and keeps it to the end.
:meth:`Registry.apply` is the ``apply`` of :func:`lasso.reload.serve_reloads`: it acts
on ``outcome.diff`` and then publishes the new snapshot.

- a removed (or replaced) chain: its bus consumers stop, its providers drain;
- an added (or replaced) chain: built, its providers started, its consumers started;
- a changed chain: providers to stop drain (out of routing now, their services
  cancelled after the drain), providers to start start and join routing, retuned
  providers change priority/archival in place, and the chain's live keys
  (breaker thresholds, hedging, strategy, routing) apply to the existing state
  without resetting it: a breaker keeps its state and counts (``set_policy``).
- every other chain gets the new ``[routing]`` and ``[circuit_breaker]`` values the
  diff reports for it; upstream WebSockets get the new ``[websocket]`` policy.

A drain lasts ``server.shutdown_grace_ms``: requests in flight hold the provider's
objects and finish on it; the subscription streams it served are nudged at once (a
``WsDisconnected`` on the chain's bus), fail over and backfill.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lasso.chain import ChainRuntime
from lasso.config import ChainConfig, Settings
from lasso.config.diff import ChainChange, ChainRef
from lasso.core.methods import Allowlist
from lasso.gateway import Gateway, Snapshot, bus_key, ws_policy
from lasso.pubsub import WsDisconnected, conn_topic
from lasso.reload import ReloadOutcome, ReloadState
from lasso.subscriptions.hub import SubscriptionHub

__all__ = ["Registry"]

log = logging.getLogger("lasso.registry")


class Registry:
    """Publishes the gateway's snapshots; see the module docstring."""

    def __init__(
        self,
        gateway: Gateway,
        hub: SubscriptionHub | None,
        state: ReloadState,
        *,
        published: Callable[[Settings], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.hub = hub
        self.state = state
        self._published = published  # e.g. the front end's limits, retuned in place

    async def apply(self, outcome: ReloadOutcome) -> None:
        """Apply a reload outcome with ``decision == "apply"``; then publish its snapshot."""
        new, diff = outcome.to_apply, outcome.diff
        if new is None or diff is None:
            raise ValueError(f"nothing to apply in a {outcome.decision!r} outcome")
        old = self.gateway.snapshot
        drain_s = new.server.shutdown_grace_ms / 1000
        profiles = {slug: dict(chains) for slug, chains in old.profiles.items()}
        for ref in (*diff.chains_removed, *diff.chains_replaced):
            chain = profiles.get(ref.profile, {}).pop(ref.chain, None)
            if chain is not None:
                self._remove_chain(ref, chain, drain_s)
        for slug in diff.profiles_removed:
            profiles.pop(slug, None)
        for ref in (*diff.chains_replaced, *diff.chains_added):
            config = _chain_config(new, ref)
            chain = self.gateway.build_chain(ref.profile, ref.chain, config, new)
            if self.gateway.services is None:
                raise RuntimeError("the gateway's providers are not running")
            await chain.start(self.gateway.services)
            if self.hub is not None:
                await self.hub.add_chain(chain, bus_key(ref.profile, ref.chain))
            profiles.setdefault(ref.profile, {})[ref.chain] = chain
            log.info("%s started", ref.path)
        changed = {change.ref: change for change in diff.chains_changed}
        for slug, chains in profiles.items():
            for name, chain in chains.items():
                ref = ChainRef(slug, name)
                change = changed.get(ref)
                if change is not None:
                    await self._change_chain(change, chain, _chain_config(new, ref), drain_s)
                chain.reconfigure(_chain_config(new, ref), new.routing)  # state kept
        self._retune_websockets(profiles, new)
        if self.hub is not None:
            self.hub.retune_budgets(new.subscriptions)
        self.gateway.publish(
            Snapshot(
                generation=outcome.generation,
                settings=new,
                profiles=profiles,
                allowed=Allowlist.parse(new.server.allow_methods),
            )
        )
        if self._published is not None:
            self._published(new)

    def _remove_chain(self, ref: ChainRef, chain: ChainRuntime, drain_s: float) -> None:
        if self.hub is not None:
            self.hub.remove_chain(bus_key(ref.profile, ref.chain))
        chain.stop(drain_s)
        log.info("%s removed (its providers drain %.1f s)", ref.path, drain_s)

    async def _change_chain(
        self, change: ChainChange, chain: ChainRuntime, config: ChainConfig, drain_s: float
    ) -> None:
        key = bus_key(change.profile, change.chain)
        chain.config = config  # new providers take their place and breaker from it
        for provider_id in change.providers_to_stop:
            if chain.remove_provider(provider_id, drain_s) is not None:
                # the streams it served fail over now, not at their next health tick
                reason = "provider removed by a config reload"
                self.gateway.bus.publish(conn_topic(key), WsDisconnected(provider_id, reason))
        for provider_id in change.providers_to_start:
            provider = config.provider(provider_id)
            if provider is not None:
                await chain.add_provider(provider)
        for retune in change.providers_retuned:
            provider = config.provider(retune.id)
            if provider is not None:
                chain.retune(provider)

    def _retune_websockets(
        self, profiles: dict[str, dict[str, ChainRuntime]], new: Settings
    ) -> None:
        """Upstream WebSockets read their policy at its next use (ping, connect, ...)."""
        policy = ws_policy(new.websocket)
        for chains in profiles.values():
            for chain in chains.values():
                for provider in chain.providers.values():
                    if provider.ws is not None:
                        provider.ws.policy = policy


def _chain_config(settings: Settings, ref: ChainRef) -> ChainConfig:
    profile = settings.profile(ref.profile)
    config = None if profile is None else profile.chains.get(ref.chain)
    if config is None:
        raise ValueError(f"{ref.path} is not in the new settings")
    return config
