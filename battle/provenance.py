"""A battle's provenance: what ran, against what, and how to run it again.

The Lasso version and the checkout's commit, the target and chain, the config the gateway ran
(secrets masked by the env), the seed, Python and anvil versions, the providers (URLs
masked) and the command that reruns this battle (:meth:`battle.options.Options.command`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import trio

import lasso
from battle.options import Options
from battle.results import Provenance

if TYPE_CHECKING:
    from battle.run import EnvLike

#: The checkout the harness runs from (for the commit in the provenance).
CHECKOUT = Path(__file__).resolve().parent.parent


async def describe(options: Options, env: EnvLike, started_utc: str) -> Provenance:
    return Provenance(
        lasso_version=lasso.__version__,
        git_commit=await git_commit(),
        target=options.target,
        chain=options.chain,
        config_path=str(env.config_path),
        config_masked=env.config_masked(),
        seed=options.seed,
        started_at_utc=started_utc,
        python=sys.version.split()[0],
        anvil_version=env.anvil_version(),
        providers=tuple(env.providers()),
        command=options.command(),
    )


async def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout the harness runs from, if it is one."""
    try:
        with trio.move_on_after(5):
            done = await trio.run_process(
                ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            if done.returncode == 0:
                return done.stdout.decode().strip() or None
    except OSError:
        pass
    return None
