"""A chain's ``[methods]`` rules, compiled once: which methods it serves, and where.

Pure. The merged rules of a chain (``ChainConfig.methods``: ``allow``, ``deny``,
``providers``) are method patterns, exact names or prefixes ending in ``*``
(:class:`~lasso.core.methods.Allowlist`):

    deny        a matching method is refused
    allow       when not empty, a method matching none of its patterns is refused
    providers   pattern -> provider ids: a matching method goes only to those ids
                (every matching pattern's ids, together); routing fails open when
                none of them can take the call (:mod:`lasso.core.eligibility`)

A refused method is answered locally with the -32601 geth gives for a method it does
not expose (:func:`lasso.core.methods.refusal`), before any routing, so a client sees
what a node with that namespace switched off would say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from lasso.core.methods import Allowlist

__all__ = ["CompiledRules", "MethodRulesLike", "compile_rules"]


class MethodRulesLike(Protocol):
    """The merged ``[methods]`` rules (a config ``MethodRules``; the core imports no config)."""

    @property
    def allow(self) -> Sequence[str]: ...
    @property
    def deny(self) -> Sequence[str]: ...
    @property
    def providers(self) -> Mapping[str, Sequence[str]]: ...


class CompiledRules:
    """One chain's rules, ready for a per-request lookup."""

    __slots__ = ("_allow", "_deny", "_preferences", "source")

    def __init__(self, rules: MethodRulesLike) -> None:
        self.source = rules
        self._allow = Allowlist.parse(rules.allow) if rules.allow else None
        self._deny = Allowlist.parse(rules.deny)
        self._preferences = tuple(
            (Allowlist.parse((pattern,)), frozenset(ids))
            for pattern, ids in rules.providers.items()
        )

    def refuses(self, method: str) -> bool:
        """Whether the rules refuse ``method`` (answered -32601 locally)."""
        if self._deny.allows(method):
            return True
        return self._allow is not None and not self._allow.allows(method)

    def providers_for(self, method: str) -> frozenset[str] | None:
        """The provider ids ``method`` is restricted to, or None (no rule names it)."""
        if not self._preferences:
            return None
        chosen: frozenset[str] | None = None
        for pattern, ids in self._preferences:
            if pattern.allows(method):
                chosen = ids if chosen is None else chosen | ids
        return chosen


_EMPTY: dict[str, Sequence[str]] = {}


class _NoRules:
    allow: Sequence[str] = ()
    deny: Sequence[str] = ()
    providers: Mapping[str, Sequence[str]] = _EMPTY


NO_RULES = CompiledRules(_NoRules())


def compile_rules(rules: MethodRulesLike, cached: CompiledRules | None = None) -> CompiledRules:
    """``rules`` compiled; ``cached`` is reused while it was compiled from this very object."""
    if cached is not None and cached.source is rules:
        return cached
    return CompiledRules(rules)
