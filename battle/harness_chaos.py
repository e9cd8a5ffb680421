"""The harness's :class:`battle.control.Chaos`: faults on the links between gateway and providers.

Each provider of the battle chain is a :class:`ProviderLink`::

    gateway --HTTP--> TcpRelay --> FaultProxy --> the provider's real URL
    gateway ---WS---> TcpRelay --> the provider's ws_url   (plain ws:// on loopback only)

so ``cut`` resets and refuses both the HTTP relay (in front of the proxy, which works for
any upstream, https included) and the WS relay, the proxy injects per-request faults,
per-method faults, delays and logs limits, and on the devnet the node itself can be
killed, paused (lag) and forked.

:class:`HarnessChaos` is made per gateway (per scenario) and records a
:class:`~battle.events.ChaosEvent` into that gateway's recorder for every fault, when it
ends (so ``started_at`` and ``ended_at`` are both known). :meth:`HarnessChaos.undo_all`
ends whatever a scenario left on, records those events as ended then, and puts every
link back as it was: relays restored, proxy faults, delays and limits cleared, paused
nodes resumed and forked nodes healed (bounded).
"""

from __future__ import annotations

import copy
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from battle.control import Need
from battle.events import ChaosEvent, Recorder
from battle.gateway_proc import fetch_health
from battle.tomlwrite import dumps
from lasso.chaos.faultproxy import FaultProxy
from lasso.chaos.faults import Fault
from lasso.chaos.logslimit import LogsLimit
from lasso.chaos.tcpcut import TcpRelay
from lasso.devnet import Devnet, DevnetError, NodeHealth

log = logging.getLogger(__name__)

__all__ = ["ChaosUnsupported", "HarnessChaos", "ProviderLink", "ReloadFailed"]

DEFAULT_RETRY_AFTER_S = 7
#: A killed node must be seen down within this, and answer again within KILL_BACK_S.
KILL_DOWN_S = 10.0
KILL_BACK_S = 60.0
RELOAD_TIMEOUT_S = 20.0
UNDO_TIMEOUT_S = 30.0
_POLL_S = 0.05


class ChaosUnsupported(ValueError):
    """The action needs something this target or provider does not have."""


class ReloadFailed(RuntimeError):
    """The gateway rejected the rewritten config, or did not answer the reload in time."""


@dataclass
class ProviderLink:
    """One provider of the battle chain, as the harness reaches it."""

    id: str
    upstream_url: str  # the real URL (secrets included: never reported unmasked)
    upstream_ws_url: str | None
    proxy: FaultProxy
    http_relay: TcpRelay  # the gateway's url: this relay, which forwards to the proxy
    ws_relay: TcpRelay | None  # the gateway's ws_url, when relayed
    ws_path: str = ""  # path and query of the relayed ws_url
    node: int | None = None  # the devnet node index
    role: str = "full"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.http_relay.port}"

    @property
    def gateway_ws_url(self) -> str | None:
        if self.ws_relay is None:
            return self.upstream_ws_url
        return f"ws://127.0.0.1:{self.ws_relay.port}{self.ws_path}"

    def clear(self) -> None:
        """Every fault off: relays restored, the proxy forwarding cleanly."""
        self.http_relay.restore()
        if self.ws_relay is not None:
            self.ws_relay.restore()
        self.proxy.fault = None
        self.proxy.method_faults.clear()
        self.proxy.queued.clear()
        self.proxy.delay_s = 0.0
        self.proxy.logs_limit = None
        self.proxy.retry_after_s = DEFAULT_RETRY_AFTER_S


@dataclass
class ConfigFile:
    """The gateway's settings file and the tree it holds now (what ``reload`` edits)."""

    path: Path
    tree: dict[str, Any]
    chain: str  # the battle chain's key under [chains]
    header: str = ""

    def write(self, tree: dict[str, Any]) -> None:
        text = dumps(tree, header=self.header)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.path)  # atomic: a reload never reads half a file
        self.tree = tree


@dataclass
class HarnessChaos:
    """:class:`battle.control.Chaos` over the env's links, recording into ``recorder``."""

    links: Sequence[ProviderLink]
    recorder: Recorder
    config: ConfigFile
    pid: int
    health_url: str
    devnet: Devnet | None = None
    pruned_id: str | None = None
    needs: frozenset[Need] = frozenset()
    alive: Callable[[], bool] = lambda: True  # the gateway process still runs
    # (slot, provider) -> (kind, started_at): faults on now, recorded when they end
    _open: dict[tuple[str, str | None], tuple[str, float]] = field(default_factory=dict)
    _paused: set[int] = field(default_factory=set)
    _forked: set[int] = field(default_factory=set)

    # --- Chaos: what there is --------------------------------------------------

    @property
    def providers(self) -> Sequence[str]:
        return tuple(link.id for link in self.links)

    @property
    def pruned(self) -> str | None:
        return self.pruned_id

    def has(self, need: Need) -> bool:
        return need in self.needs

    def _link(self, provider: str) -> ProviderLink:
        for link in self.links:
            if link.id == provider:
                return link
        raise ChaosUnsupported(f"no provider {provider!r}; the providers are {self.providers}")

    def _node(self, provider: str) -> tuple[Devnet, int]:
        link = self._link(provider)
        if self.devnet is None or link.node is None:
            raise ChaosUnsupported(f"{provider} is not a devnet node: no node control")
        return self.devnet, link.node

    # --- the event book ----------------------------------------------------------

    def _start(self, slot: str, provider: str | None, kind: str) -> None:
        self._end(slot, provider)
        self._open[(slot, provider)] = (kind, trio.current_time())

    def _end(self, slot: str, provider: str | None) -> None:
        opened = self._open.pop((slot, provider), None)
        if opened is not None:
            kind, started = opened
            self.recorder.record(ChaosEvent(kind, provider, started, trio.current_time()))

    def _end_slots(self, provider: str, prefix: str) -> None:
        for slot, target in list(self._open):
            if target == provider and slot.startswith(prefix):
                self._end(slot, target)

    # --- real nodes ---------------------------------------------------------------

    async def kill(self, provider: str) -> None:
        devnet, index = self._node(provider)
        started = trio.current_time()
        devnet.kill(index)
        ended: float | None = None
        try:
            with trio.move_on_after(KILL_DOWN_S):
                await devnet.wait_for_health(index, NodeHealth.DEAD, NodeHealth.HUNG)
                with trio.move_on_after(KILL_BACK_S):
                    await devnet.wait_for_health(index, NodeHealth.CATCHING_UP, NodeHealth.UP)
                    ended = trio.current_time()
            if ended is None:
                log.warning("%s was killed and did not answer again in time", provider)
        finally:
            # recorded even when the scenario ends (cancels) before the node is back
            self.recorder.record(ChaosEvent("kill", provider, started, ended))

    def pause(self, provider: str) -> None:
        devnet, index = self._node(provider)
        devnet.pause(index)
        self._paused.add(index)
        self._start("lag", provider, "lag")

    async def resume(self, provider: str) -> None:
        devnet, index = self._node(provider)
        await devnet.resume(index)
        self._paused.discard(index)
        self._end("lag", provider)

    async def fork(self, provider: str) -> None:
        devnet, index = self._node(provider)
        await devnet.fork(index)
        self._forked.add(index)
        self._start("fork", provider, "fork")

    async def heal(self, provider: str) -> None:
        devnet, index = self._node(provider)
        await devnet.heal(index)
        self._forked.discard(index)
        self._end("fork", provider)

    # --- the network ------------------------------------------------------------------

    def cut(self, provider: str) -> None:
        link = self._link(provider)
        link.http_relay.cut()
        if link.ws_relay is not None:
            link.ws_relay.cut()
        self._start("cut", provider, "cut")

    def cut_ws(self, provider: str) -> None:
        link = self._link(provider)
        if link.ws_relay is None:
            raise ChaosUnsupported(f"{provider} has no relayed WebSocket to cut")
        link.ws_relay.cut()
        self._start("ws_cut", provider, "ws_cut")

    def restore(self, provider: str) -> None:
        link = self._link(provider)
        link.http_relay.restore()
        if link.ws_relay is not None:
            link.ws_relay.restore()
        self._end("cut", provider)
        self._end("ws_cut", provider)

    # --- the fault proxy ----------------------------------------------------------------

    def set_fault(
        self, provider: str, fault: Fault | None, *, methods: frozenset[str] | None = None
    ) -> None:
        """``fault`` for every request, or for ``methods`` only; ``None`` clears it (with
        ``methods`` None: every fault on that provider, per-method ones included)."""
        proxy = self._link(provider).proxy
        if methods is None:
            proxy.fault = fault
            if fault is None:
                proxy.method_faults.clear()
                self._end_slots(provider, "fault")
            else:
                self._start("fault", provider, fault.value)
            return
        slot = "fault:" + ",".join(sorted(methods))
        for method in methods:
            if fault is None:
                proxy.method_faults.pop(method, None)
            else:
                proxy.method_faults[method] = fault
        if fault is None:
            self._end(slot, provider)
        else:
            self._start(slot, provider, fault.value)

    def set_delay(self, provider: str, seconds: float) -> None:
        self._link(provider).proxy.delay_s = max(0.0, seconds)
        if seconds > 0:
            self._start("delay", provider, "delay")
        else:
            self._end("delay", provider)

    def set_logs_limit(self, provider: str, limit: LogsLimit | None) -> None:
        self._link(provider).proxy.logs_limit = limit
        if limit is not None:
            self._start("logs_limit", provider, "logs_limit")
        else:
            self._end("logs_limit", provider)

    def set_retry_after(self, provider: str, seconds: int) -> None:
        self._link(provider).proxy.retry_after_s = seconds

    # --- the config file ------------------------------------------------------------------

    def chain_table(self, settings: dict[str, Any]) -> dict[str, Any]:
        table: dict[str, Any] = settings["chains"][self.config.chain]
        return table

    async def reload(self, edit: Callable[[dict[str, Any]], None], *, kind: str) -> None:
        started = trio.current_time()
        tree = copy.deepcopy(self.config.tree)
        edit(tree)
        async with httpx.AsyncClient() as client:
            before = await self._config_section(client)
            self.config.write(tree)
            try:
                if not self.alive():
                    raise ProcessLookupError(self.pid)
                os.kill(self.pid, signal.SIGHUP)
            except ProcessLookupError:
                raise ReloadFailed(f"the gateway (pid {self.pid}) is gone") from None
            section = await self._next_attempt(client, before)
        last = section.get("last_reload") or {}
        if last.get("outcome") == "rejected":
            raise ReloadFailed(f"the gateway rejected the edited config: {last.get('problems')}")
        self.recorder.record(ChaosEvent(kind, None, started, trio.current_time()))

    async def _config_section(self, client: httpx.AsyncClient) -> dict[str, Any]:
        report = await fetch_health(client, self.health_url)
        section = None if report is None else report.get("config")
        return section if isinstance(section, dict) else {}

    async def _next_attempt(
        self, client: httpx.AsyncClient, before: dict[str, Any]
    ) -> dict[str, Any]:
        """/health's config section once it shows a reload attempt newer than ``before``."""
        try:
            with trio.fail_after(RELOAD_TIMEOUT_S):
                while True:
                    if not self.alive():
                        raise ReloadFailed(f"the gateway (pid {self.pid}) is gone")
                    section = await self._config_section(client)
                    if section and section.get("last_reload") != before.get("last_reload"):
                        return section
                    await trio.sleep(_POLL_S)
        except trio.TooSlowError:
            raise ReloadFailed(
                f"the gateway showed no reload within {RELOAD_TIMEOUT_S:g} s"
            ) from None

    # --- the way out ----------------------------------------------------------------------------

    async def undo_all(self) -> None:
        """End every fault (recording it), put every link and node back (bounded)."""
        for link in self.links:
            link.clear()
        for slot, provider in list(self._open):
            self._end(slot, provider)
        if self.devnet is None:
            return
        with trio.move_on_after(UNDO_TIMEOUT_S) as scope:
            for index in sorted(self._forked):
                try:
                    await self.devnet.heal(index)
                except DevnetError as exc:
                    log.warning("could not heal node %d: %s", index, exc)
            for index in sorted(self._paused - self._forked):
                await self.devnet.resume(index)
        if scope.cancelled_caught:
            log.warning("the devnet's nodes were not all back within %g s", UNDO_TIMEOUT_S)
        self._forked.clear()
        self._paused.clear()
