"""``lasso probe <chain> [--config PATH] [--profile SLUG] [--write]``.

Exit status: 0 probed (at least one provider answered); 1 no provider answered;
2 the settings file is bad, or names no such profile or chain.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import trio

from lasso import redact
from lasso.config import ChainConfig, ConfigError, load_settings
from lasso.probe.report import ProviderReport, render_table, render_toml
from lasso.probe.run import ProbeOptions, probe_chain

__all__ = ["EXIT_CONFIG", "EXIT_NO_ANSWER", "EXIT_PROBED", "run_probe_cli"]

EXIT_PROBED = 0
EXIT_NO_ANSWER = 1
EXIT_CONFIG = 2


def run_probe_cli(
    path: str, chain_ident: str, profile_slug: str, *, write: bool, options: ProbeOptions
) -> int:
    """Probe every provider of one chain; print the table (and with ``write`` the TOML)."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    redact.update(settings)  # the output quotes providers' errors: no secret in it
    profile = settings.profile(profile_slug)
    if profile is None:
        known = ", ".join(sorted(settings.profiles))
        print(
            f"lasso probe: {path} has no profile {profile_slug!r} (profiles: {known})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    chain = profile.resolve_chain(chain_ident)
    if chain is None:
        known = ", ".join(sorted(profile.chains))
        print(
            f"lasso probe: profile {profile_slug!r} of {path} has no chain {chain_ident!r} "
            f"(chains: {known})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    reports, elapsed_s = trio.run(_timed_probe, chain, options)
    table = redact.scrub(render_table(chain.name, profile.slug, reports, elapsed_s))
    try:
        if write:
            print(table, file=sys.stderr)
            measured_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            toml = render_toml(chain.name, profile.slug, reports, measured_at)
            print(redact.scrub(toml), end="", flush=True)
        else:
            print(table, flush=True)
    except BrokenPipeError:  # `lasso probe ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_PROBED if any(r.answered for r in reports) else EXIT_NO_ANSWER


async def _timed_probe(
    chain: ChainConfig, options: ProbeOptions
) -> tuple[list[ProviderReport], float]:
    begin = trio.current_time()
    reports = await probe_chain(chain, options)
    return reports, trio.current_time() - begin
