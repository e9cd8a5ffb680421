"""Secrets out of a run before anything is written: every URL masked, again.

The runner's :class:`battle.results.Provenance` already holds masked URLs; the report masks
them once more (:func:`battle.results.mask_url` is idempotent) and every URL inside the config
text and the command, so a provider key that slipped through never reaches a file.
"""

from __future__ import annotations

import re

import msgspec

from battle.results import BattleRun, Provenance, ProviderInfo, mask_url

_URL = re.compile(r"\b(?:https?|wss?)://[^\s\"'<>`]+", re.IGNORECASE)
# A provider's `api_key = "..."` and the values of an inline `headers = { ... }` (config keys
# whose values the schema marks secret).
_API_KEY = re.compile(r'^(\s*api_key\s*=\s*)(["\']).*?\2', re.MULTILINE)
_HEADERS = re.compile(r"^(\s*headers\s*=\s*)\{.*\}", re.MULTILINE)
_VALUE = re.compile(r'=\s*(["\']).*?(?<!\\)\1')


def mask_text(text: str) -> str:
    """``text`` with every http(s)/ws(s) URL, API key and inline header value masked."""
    text = _URL.sub(lambda m: mask_url(m.group(0)), text)
    text = _API_KEY.sub(lambda m: f'{m.group(1)}"***"', text)
    return _HEADERS.sub(lambda m: _VALUE.sub('= "***"', m.group(0)), text)


def _provider(info: ProviderInfo) -> ProviderInfo:
    return msgspec.structs.replace(
        info,
        url=mask_url(info.url),
        ws_url=None if info.ws_url is None else mask_url(info.ws_url),
    )


def _provenance(p: Provenance) -> Provenance:
    return msgspec.structs.replace(
        p,
        config_path=mask_text(p.config_path),
        config_masked=mask_text(p.config_masked),
        command=mask_text(p.command),
        providers=tuple(_provider(info) for info in p.providers),
    )


def masked(run: BattleRun) -> BattleRun:
    """``run`` with its provenance's URLs masked (unchanged when they already were)."""
    return msgspec.structs.replace(run, provenance=_provenance(run.provenance))
