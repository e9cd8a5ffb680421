"""What a chaos scenario may do to the providers behind the gateway: the :class:`Chaos` protocol.

:class:`battle.env.BattleEnv` implements it for every target. A scenario's ``chaos`` coroutine
gets one and acts only through it, so the same scenario reads the same on the local devnet, on
an operator's config and on public providers; a scenario declares the :class:`Need` s it
uses, and the runner skips it (saying which need is missing) on a target without them.

Every fault is recorded as a :class:`battle.events.ChaosEvent` by the implementation itself
(``started_at`` when applied, ``ended_at`` when undone), with the provider id as ``target``
(``None`` for every provider), so failover and backfill SLOs see exactly when it happened.
Provider ids are the gateway config's ids for the battle chain.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from lasso.chaos.faults import Fault
from lasso.chaos.logslimit import LogsLimit


class Need(enum.Enum):
    """A capability of the target a scenario needs."""

    NODES = "nodes"  # real node control: kill, pause (lag), fork (the local devnet)
    PRUNED = "pruned"  # a provider that keeps only recent state
    WEBSOCKET = "websocket"  # providers with a ws_url, relayed so the harness can cut them
    PROXY = "proxy"  # HTTP goes through a fault proxy (faults, 429, latency, logs limits)
    RELOAD = "reload"  # the gateway runs from a file the harness may rewrite and SIGHUP


class Chaos(Protocol):
    """The harness's hands on the providers. Times are ``trio.current_time()`` seconds."""

    @property
    def providers(self) -> Sequence[str]:
        """Provider ids of the battle chain, in config order."""
        ...

    @property
    def pruned(self) -> str | None:
        """The id of a provider that keeps only recent state, if any."""
        ...

    def has(self, need: Need) -> bool: ...

    # Real nodes (Need.NODES).
    async def kill(self, provider: str) -> None:
        """SIGKILL the node's process; the devnet restarts and catches it up by itself.
        Recorded as ``kill`` ending when the node answers again."""
        ...

    def pause(self, provider: str) -> None:
        """Stop mining on that node: a lagging node. Recorded as ``lag`` until resume."""
        ...

    async def resume(self, provider: str) -> None: ...

    async def fork(self, provider: str) -> None:
        """Mine a block only that node has (``Devnet.fork``). Recorded as ``fork``."""
        ...

    async def heal(self, provider: str) -> None: ...

    # The network (Need.WEBSOCKET for cut_ws; cut/restore cover HTTP and WS).
    def cut(self, provider: str) -> None:
        """Reset every connection to the provider and refuse new ones (HTTP and WS): the
        provider is down as far as the gateway can tell. Recorded as ``cut``."""
        ...

    def cut_ws(self, provider: str) -> None:
        """Reset only the provider's WebSocket connections, and refuse new ones until
        restore. Recorded as ``ws_cut``."""
        ...

    def restore(self, provider: str) -> None:
        """End ``cut`` / ``cut_ws`` on that provider."""
        ...

    # The fault proxy in front of each provider's HTTP (Need.PROXY).
    def set_fault(
        self, provider: str, fault: Fault | None, *, methods: frozenset[str] | None = None
    ) -> None:
        """Every HTTP request to ``provider`` (only those of ``methods`` when given) meets
        ``fault``; ``None`` clears it. Recorded with the fault's value as kind."""
        ...

    def set_delay(self, provider: str, seconds: float) -> None:
        """Add ``seconds`` before each HTTP answer of ``provider`` (0 ends it). Kind ``delay``."""
        ...

    def set_logs_limit(self, provider: str, limit: LogsLimit | None) -> None:
        """Make the provider refuse wide ``eth_getLogs`` with a real provider's message."""
        ...

    def set_retry_after(self, provider: str, seconds: int) -> None:
        """The ``Retry-After`` its 429 answers carry."""
        ...

    # The gateway's config file (Need.RELOAD).
    async def reload(
        self, edit: Callable[[dict[str, Any]], None], *, kind: str, target: str | None = None
    ) -> None:
        """Apply ``edit`` to the gateway's settings (the parsed TOML as a dict, edited in
        place), write the file, send SIGHUP and wait until ``/health`` shows the new
        generation applied. Recorded as ``kind`` with ``target`` (the provider the edit takes
        away, so failover from it is measured; None when it names none)."""
        ...

    def chain_table(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The battle chain's table inside ``settings`` (for ``edit`` functions)."""
        ...
