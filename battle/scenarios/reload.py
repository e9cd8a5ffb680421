"""A hot reload of the gateway's config that removes the serving provider, then puts it back."""

from __future__ import annotations

from typing import Any

from battle.control import Chaos, Need
from battle.scenario import Rate, Scenario
from battle.scenarios.common import HEALTHY, SUBSCRIPTIONS, Timeline, declare, serving_provider


class _Removal:
    """The config edits: take ``provider``'s table out of the chain, then put it back where it
    was. Each is idempotent (an edit applied twice changes nothing more)."""

    def __init__(self, c: Chaos, provider: str) -> None:
        self._chaos = c
        self._provider = provider
        self._kept: tuple[int, dict[str, Any]] | None = None

    def _tables(self, settings: dict[str, Any]) -> list[dict[str, Any]]:
        providers: list[dict[str, Any]] = self._chaos.chain_table(settings)["providers"]
        return providers

    def remove(self, settings: dict[str, Any]) -> None:
        tables = self._tables(settings)
        for index, table in enumerate(tables):
            if table.get("id") == self._provider:
                self._kept = (index, tables.pop(index))
                return

    def put_back(self, settings: dict[str, Any]) -> None:
        tables = self._tables(settings)
        if self._kept is None or any(t.get("id") == self._provider for t in tables):
            return
        index, table = self._kept
        tables.insert(min(index, len(tables)), table)


async def _reload_removes_serving(c: Chaos) -> None:
    if len(c.providers) < 2:
        return  # removing the only provider would leave the chain empty: an invalid config
    t = Timeline()
    removal = _Removal(c, serving_provider(c))
    await t.at(3)
    await c.reload(removal.remove, kind="reload-remove")
    await t.at(8)
    await c.reload(removal.put_back, kind="reload-add")


RELOAD_REMOVES_SERVING = Scenario(
    name="reload-removes-serving",
    summary="hot-reload a config without the first provider (subscriptions' upstream) at 3 s, "
    "put it back at 8 s",
    duration_s=13,
    chaos=_reload_removes_serving,
    # A reload's event has no target provider, so failover latency has no data here; the
    # removed provider drains and its subscriptions must move without a gap or duplicate.
    thresholds=declare(*HEALTHY, "read_your_head_misses == 0", *SUBSCRIPTIONS),
    rate=Rate(20.0),
    needs=frozenset({Need.RELOAD, Need.WEBSOCKET}),
)
