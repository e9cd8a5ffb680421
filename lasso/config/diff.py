"""Two ``Settings`` -> what a reload has to do. Pure: no I/O, no clock.

``diff_settings(old, new)`` compares the running settings with a newly loaded
file, guided by the table in ``classify.py`` (it names no key itself):

- profiles and chains added or removed, matched by slug and by name;
- a chain whose identity changed (its ``chain_id``) is *replaced*: removed and
  added;
- for a chain present in both, its providers (matched by ``id``) added,
  removed, *replaced* (URL, ``ws_url``, headers or key changed: a removal plus
  an addition) or *retuned* in place (``priority``, ``archival``), and its own
  live keys changed (effective values: a top-level ``[circuit_breaker]`` change
  shows on every chain that inherits it);
- the top-level live keys changed, as field paths (``server.max_batch``);
- the restart-only keys changed (``server.port``), which a reload does not
  apply: ``keep_running(old, new)`` is ``new`` with those keys put back to the
  running values, the settings to publish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from lasso.config.classify import Kind, rule, section_types
from lasso.config.model import DEFAULT_PROFILE, ChainConfig, Settings
from lasso.config.problems import render_path

__all__ = [
    "ChainChange",
    "ChainRef",
    "ProviderRetune",
    "SettingsDiff",
    "chain_path",
    "diff_settings",
    "keep_running",
]


def chain_path(profile: str, chain: str) -> str:
    """Where a chain is written in the file: ``chains.x`` or ``profiles.p.chains.x``."""
    if profile == DEFAULT_PROFILE:
        return render_path(("chains", chain))
    return render_path(("profiles", profile, "chains", chain))


class ChainRef(msgspec.Struct, frozen=True, order=True):
    """One chain of one profile."""

    profile: str
    chain: str

    @property
    def path(self) -> str:
        return chain_path(self.profile, self.chain)


class ProviderRetune(msgspec.Struct, frozen=True):
    """A provider kept as it is (state, sockets, subscriptions), with these keys changed."""

    id: str
    fields: tuple[str, ...]


class ChainChange(msgspec.Struct, frozen=True, kw_only=True):
    """A chain present before and after, changed in place.

    ``live`` holds the chain's own changed keys, relative to the chain
    (``circuit_breaker.failure_threshold``, ``aliases``), compared on effective
    values. A replaced provider is in ``providers_replaced`` only; stop it and
    start it again (``providers_to_stop`` / ``providers_to_start`` list both kinds).
    """

    profile: str
    chain: str
    live: tuple[str, ...] = ()
    providers_added: tuple[str, ...] = ()
    providers_removed: tuple[str, ...] = ()
    providers_replaced: tuple[str, ...] = ()
    providers_retuned: tuple[ProviderRetune, ...] = ()
    providers_reordered: bool = False

    @property
    def ref(self) -> ChainRef:
        return ChainRef(self.profile, self.chain)

    @property
    def providers_to_stop(self) -> tuple[str, ...]:
        return self.providers_removed + self.providers_replaced

    @property
    def providers_to_start(self) -> tuple[str, ...]:
        return self.providers_replaced + self.providers_added


class SettingsDiff(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that differs between two ``Settings``, sorted for stable output.

    A chain of an added (removed) profile is also in ``chains_added``
    (``chains_removed``). ``live`` holds the top-level tables' changed keys;
    ``restart_only`` the keys a reload does not apply.
    """

    profiles_added: tuple[str, ...] = ()
    profiles_removed: tuple[str, ...] = ()
    chains_added: tuple[ChainRef, ...] = ()
    chains_removed: tuple[ChainRef, ...] = ()
    chains_replaced: tuple[ChainRef, ...] = ()
    chains_changed: tuple[ChainChange, ...] = ()
    live: tuple[str, ...] = ()
    restart_only: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to apply (restart-only changes are never applied)."""
        return msgspec.structs.replace(self, restart_only=()) == _NO_CHANGE

    def summary(self) -> str:
        """One short line of counts, e.g. for ``/health``."""
        chains = self.chains_changed
        parts = [
            _counts("profiles", added=self.profiles_added, removed=self.profiles_removed),
            _counts(
                "chains",
                added=self.chains_added,
                removed=self.chains_removed,
                replaced=self.chains_replaced,
                changed=chains,
            ),
            _counts(
                "providers",
                added=[p for c in chains for p in c.providers_added],
                removed=[p for c in chains for p in c.providers_removed],
                replaced=[p for c in chains for p in c.providers_replaced],
                retuned=[p for c in chains for p in c.providers_retuned],
            ),
            f"{len(self.live)} live keys changed" if self.live else "",
            f"{len(self.restart_only)} need a restart" if self.restart_only else "",
        ]
        return "; ".join(part for part in parts if part) or "no change"

    def lines(self) -> list[str]:
        """One line per change, for the log."""
        out = [f"profile {slug} added" for slug in self.profiles_added]
        out += [f"profile {slug} removed" for slug in self.profiles_removed]
        out += [f"{ref.path} added" for ref in self.chains_added]
        out += [f"{ref.path} removed" for ref in self.chains_removed]
        out += [f"{ref.path} replaced (chain_id changed)" for ref in self.chains_replaced]
        for chain in self.chains_changed:
            out += _chain_lines(chain)
        out += [f"{path} changed" for path in self.live]
        return out


_NO_CHANGE = SettingsDiff()


def _counts(noun: str, **groups: Sequence[object]) -> str:
    shown = [f"{len(group)} {verb}" for verb, group in groups.items() if group]
    return f"{noun}: {', '.join(shown)}" if shown else ""


def _chain_lines(chain: ChainChange) -> list[str]:
    path = chain_path(chain.profile, chain.chain)
    out = [f"{path}.{key} changed" for key in chain.live]
    out += [f"{path} provider {pid} added" for pid in chain.providers_added]
    out += [f"{path} provider {pid} removed" for pid in chain.providers_removed]
    out += [
        f"{path} provider {pid} replaced (url, ws_url, headers or api_key changed)"
        for pid in chain.providers_replaced
    ]
    out += [
        f"{path} provider {each.id} retuned ({', '.join(each.fields)})"
        for each in chain.providers_retuned
    ]
    if chain.providers_reordered:
        out.append(f"{path} providers reordered")
    return out


class _Changes:
    """Changed field paths of one Struct pair, by kind."""

    def __init__(self) -> None:
        self.live: list[str] = []
        self.restart: list[str] = []
        self.identity: list[str] = []


def _compare(old: msgspec.Struct, new: msgspec.Struct, prefix: str, out: _Changes) -> None:
    """Record in ``out`` every changed field of ``old``/``new`` (same type), recursing
    into nested tables. Collections (``ITEMS``) and keys are the caller's business."""
    for name in old.__struct_fields__:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        kind = rule(type(old), name).kind
        if kind in (Kind.ITEMS, Kind.KEY):
            continue
        path = f"{prefix}{name}"
        if kind is Kind.NESTED and before is not None and after is not None:
            _compare(before, after, f"{path}.", out)
        elif kind is Kind.RESTART:
            out.restart.append(path)
        elif kind is Kind.IDENTITY:
            out.identity.append(path)
        else:  # LIVE, or a nested table that appeared or went
            out.live.append(path)


def diff_settings(old: Settings, new: Settings) -> SettingsDiff:
    """What differs between the running ``old`` and the newly loaded ``new``."""
    top = _Changes()
    _compare(old, new, "", top)
    for section, struct in section_types().items():  # collections in a top-level table
        for name in struct.__struct_fields__:  # ([auth] api_keys) change as a whole
            before, after = getattr(old, section), getattr(new, section)
            if rule(struct, name).kind is Kind.ITEMS and getattr(before, name) != getattr(
                after, name
            ):
                top.live.append(f"{section}.{name}")
    added, removed, replaced, changed = [], [], [], []
    for slug in sorted(old.profiles.keys() & new.profiles.keys()):
        # A profile's own keys (its rate_limit); its chains are compared below.
        _compare(old.profiles[slug], new.profiles[slug], f"profiles.{slug}.", top)
    for slug in sorted(old.profiles.keys() | new.profiles.keys()):
        before = old.profiles[slug].chains if slug in old.profiles else {}
        after = new.profiles[slug].chains if slug in new.profiles else {}
        for name in sorted(before.keys() | after.keys()):
            ref = ChainRef(slug, name)
            if name not in before:
                added.append(ref)
            elif name not in after:
                removed.append(ref)
            elif (change := _chain_change(slug, before[name], after[name])) is None:
                replaced.append(ref)
            elif change != ChainChange(profile=slug, chain=name):
                changed.append(change)
    return SettingsDiff(
        profiles_added=tuple(sorted(new.profiles.keys() - old.profiles.keys())),
        profiles_removed=tuple(sorted(old.profiles.keys() - new.profiles.keys())),
        chains_added=tuple(added),
        chains_removed=tuple(removed),
        chains_replaced=tuple(replaced),
        chains_changed=tuple(changed),
        live=tuple(top.live),
        restart_only=tuple(top.restart),
    )


def _chain_change(profile: str, old: ChainConfig, new: ChainConfig) -> ChainChange | None:
    """How a chain changed in place; None when it must be replaced."""
    own = _Changes()
    _compare(old, new, "", own)
    if own.identity:
        return None
    before = {p.id: p for p in old.providers}
    after = {p.id: p for p in new.providers}
    replaced, retuned = [], []
    for pid in (pid for pid in after if pid in before):
        fields = _Changes()
        _compare(before[pid], after[pid], "", fields)
        if fields.identity:
            replaced.append(pid)
        elif fields.live:
            retuned.append(ProviderRetune(pid, tuple(fields.live)))
    kept_order = [pid for pid in before if pid in after]
    return ChainChange(
        profile=profile,
        chain=old.name,
        live=tuple(own.live),
        providers_added=tuple(pid for pid in after if pid not in before),
        providers_removed=tuple(pid for pid in before if pid not in after),
        providers_replaced=tuple(replaced),
        providers_retuned=tuple(retuned),
        providers_reordered=kept_order != [pid for pid in after if pid in before],
    )


def keep_running(old: Settings, new: Settings) -> Settings:
    """``new`` with every restart-only key put back to its value in ``old``."""
    sections: dict[str, msgspec.Struct] = {}
    for section, struct in section_types().items():
        restart = [f for f in struct.__struct_fields__ if rule(struct, f).kind is Kind.RESTART]
        if restart:
            running: Mapping[str, object] = {f: getattr(getattr(old, section), f) for f in restart}
            sections[section] = msgspec.structs.replace(getattr(new, section), **running)
    return msgspec.structs.replace(new, **sections)
