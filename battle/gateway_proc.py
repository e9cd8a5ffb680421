"""The gateway under battle as a real subprocess: ``python -m lasso serve``, started and stopped.

:func:`run_gateway` starts ``sys.executable -m lasso serve --config F --port P --pid-file W``
from the repository root (so the checkout's own ``lasso`` is imported, not an installed
one), in its own session (a Ctrl-C aimed at the harness does not reach it; the harness
stops it itself) and watched by the devnet's guardian (:mod:`lasso.devnet.guardian`),
so a harness killed outright does not leave it running. Its stdout and stderr go to a
log file. It is ready when ``/health`` answers 200 and lists the battle chain with
every expected provider and a consensus head, within a bounded wait; a process that
exits first raises :class:`GatewayFailed` with the log's tail. Then, for at most
``SETTLE_S``, it waits for every provider to have a height and its WebSocket (if any)
connected, so a scenario's first fault meets a gateway that knows all its providers.

Leaving the context stops it: SIGTERM, a bounded wait, then SIGKILL. A gateway that died
on its own is simply reaped. Every wait here is bounded, so a dead or wedged gateway
never hangs the harness.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio

from battle.control import Chaos
from lasso.devnet.guardian import Guardian

__all__ = ["GatewayFailed", "GatewayProcess", "fetch_health", "run_gateway"]

#: The repository root: ``python -m lasso`` run from here imports this checkout's lasso.
REPO = Path(__file__).resolve().parent.parent

READY_TIMEOUT_S = 45.0
STOP_GRACE_S = 5.0
SETTLE_S = 10.0
_POLL_S = 0.1
_HEALTH_TIMEOUT_S = 2.0
_LOG_TAIL_BYTES = 4000


class GatewayFailed(RuntimeError):
    """The gateway process exited, or never became ready."""


@dataclass(frozen=True)
class GatewayProcess:
    """A running gateway; ``chaos`` records into the recorder ``gateway()`` was given."""

    http_url: str  # JSON-RPC over HTTP: http://127.0.0.1:P/rpc/<chain>
    ws_url: str  # JSON-RPC over WebSocket: ws://127.0.0.1:P/ws/rpc/<chain>
    health_url: str
    pid: int
    chaos: Chaos
    log_path: Path
    process: trio.Process

    @property
    def returncode(self) -> int | None:
        """None while it runs; its exit status once it has exited."""
        return self.process.poll()


async def fetch_health(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    """``/health`` as a dict when it answers 200 with JSON; None otherwise."""
    try:
        with trio.fail_after(_HEALTH_TIMEOUT_S):
            answer = await client.get(url)
    except (httpx.HTTPError, trio.TooSlowError):
        return None
    if answer.status_code != 200:
        return None
    try:
        report = msgspec.json.decode(answer.content)
    except msgspec.DecodeError:
        return None
    return report if isinstance(report, dict) else None


def chain_ready(report: dict[str, Any], chain: str, providers: Collection[str]) -> bool:
    """The chain is served and every expected provider is known, with a consensus head."""
    entry = report.get("chains", {}).get(chain)
    if not isinstance(entry, dict):
        return False
    known = {p.get("id") for p in entry.get("providers", [])}
    return (
        set(providers) <= known
        and entry.get("consensus_head") is not None
        and entry.get("available_providers", 0) > 0
    )


def chain_settled(report: dict[str, Any], chain: str) -> bool:
    """Every provider of the chain has a known height and, with a WebSocket, is connected."""
    entry = report.get("chains", {}).get(chain, {})
    for provider in entry.get("providers", []):
        ws = provider.get("ws")
        if provider.get("height") is None or (isinstance(ws, dict) and not ws.get("connected")):
            return False
    return True


def log_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"


@asynccontextmanager
async def run_gateway(
    *,
    config_path: Path,
    port: int,
    chain: str,
    providers: Collection[str],
    log_path: Path,
    pid_path: Path,
    guardian: Guardian,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> AsyncIterator[trio.Process]:
    """Start the gateway; yield its process once ready; stop it on the way out."""
    argv = [sys.executable, "-m", "lasso", "serve", "--config", str(config_path)]
    argv += ["--port", str(port), "--pid-file", str(pid_path)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("LASSO_CONFIG", None)
    with log_path.open("ab") as log:
        process = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
            env=env,
            start_new_session=True,
        )
    guardian.watch(process.pid)
    try:
        await _wait_ready(process, port, chain, providers, log_path, ready_timeout_s)
        yield process
    finally:
        with trio.CancelScope(shield=True):
            await stop_process(process)
            # a killed gateway leaves its pid file behind
            await trio.Path(pid_path).unlink(missing_ok=True)
        guardian.forget(process.pid)


async def _wait_ready(
    process: trio.Process,
    port: int,
    chain: str,
    providers: Collection[str],
    log_path: Path,
    timeout_s: float,
) -> None:
    url = f"http://127.0.0.1:{port}/health"
    last: dict[str, Any] | None = None
    async with httpx.AsyncClient() as client:
        try:
            with trio.fail_after(timeout_s):
                while True:
                    if process.poll() is not None:
                        raise GatewayFailed(
                            f"the gateway exited with status {process.returncode} before it "
                            f"was ready; the end of {log_path}:\n{log_tail(log_path)}"
                        )
                    last = await fetch_health(client, url)
                    if last is not None and chain_ready(last, chain, providers):
                        break
                    await trio.sleep(_POLL_S)
        except trio.TooSlowError:
            raise GatewayFailed(
                f"the gateway was not ready within {timeout_s:g} s (chain {chain!r}, providers "
                f"{sorted(providers)}); last /health: {last!r}; the end of {log_path}:\n"
                f"{log_tail(log_path)}"
            ) from None
        # Ready; give every provider a moment to be seen (a height, its WebSocket up), so a
        # scenario's faults meet a gateway that knows all its providers. A provider that is
        # down is the target's business, not a reason to fail: the wait is bounded.
        with trio.move_on_after(SETTLE_S):
            while not (last is not None and chain_settled(last, chain)):
                await trio.sleep(_POLL_S)
                last = await fetch_health(client, url)


async def stop_process(process: trio.Process, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, up to ``grace_s`` for it to exit, then SIGKILL; reaps it either way."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            process.terminate()
        with trio.move_on_after(grace_s):
            await process.wait()
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        with trio.move_on_after(grace_s):
            await process.wait()
