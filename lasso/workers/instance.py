"""Instance-wide ``/health`` and ``/metrics`` for a group of workers.

Each worker keeps its own routing state (providers, breakers, latency, subscriptions),
so each has its own health and metrics. Whichever worker a scrape lands on answers for
the whole instance: besides the public socket, every worker listens on a private unix
socket in the group's directory (``<dir>/<index>.sock``, mode 0700 directory), where a
sibling asks it for its own ``health`` or ``metrics`` (one line in, the bytes out,
then close). The answering worker:

- ``/metrics``: gathers every worker's exposition and merges the families, every
  sample labelled ``worker="<index>"`` (counters are not summed: Prometheus sums with
  ``sum without (worker)``, and per-worker series show an uneven spread or one
  worker's breaker open);
- ``/health``: its own full report, plus ``workers``: who answered, how many are up,
  and each worker's pid, status and config generation. The top-level ``status`` is
  ``degraded`` if any worker is down or degraded.

A sibling that does not answer within ``PEER_TIMEOUT_S`` (restarting, wedged) is
``down`` in ``/health`` and missing from ``/metrics``; the answer never waits longer.
Why not prometheus-client's multiprocess mode: Lasso's metrics are mostly custom
collectors reading ``statistics()`` at scrape time, which that mode cannot share
through its mmap files (it only aggregates the client library's own metric objects).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["PEER_TIMEOUT_S", "Instance", "merge_expositions"]

log = logging.getLogger("lasso.workers")

#: The longest a sibling's answer is waited for.
PEER_TIMEOUT_S = 2.0
#: The most bytes read from a sibling (a metrics exposition is well below).
PEER_MAX_BYTES = 64 * 1024 * 1024

_COMMANDS = (b"health", b"metrics")


def socket_path(directory: str, index: int) -> str:
    return str(Path(directory) / f"{index}.sock")


class Instance:
    """One worker's view of its group: its identity, its own answers for its siblings,
    and the merged answers for clients."""

    def __init__(self, index: int, count: int, directory: str) -> None:
        self.index = index
        self.count = count
        self.directory = directory
        self.pid = os.getpid()
        self.local_health: Callable[[], dict[str, Any]] | None = None
        self.local_metrics: Callable[[], bytes] | None = None

    def attach(
        self, health: Callable[[], dict[str, Any]], metrics: Callable[[], bytes] | None
    ) -> None:
        """The worker's own ``/health`` report and ``/metrics`` exposition."""
        self.local_health = health
        self.local_metrics = metrics

    # -- the private socket: answering siblings ------------------------------------

    async def serve_peers(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        path = socket_path(self.directory, self.index)
        await trio.Path(path).unlink(missing_ok=True)  # a previous worker in this slot
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        with sock:
            await sock.bind(path)
            sock.listen(16)
            listener = trio.SocketListener(sock)
            task_status.started()
            async with trio.open_nursery() as nursery:
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(self._answer, stream)

    async def _answer(self, stream: trio.SocketStream) -> None:
        async with stream:
            with trio.move_on_after(PEER_TIMEOUT_S):
                try:
                    command = (await stream.receive_some(64)).strip()
                    await stream.send_all(self._local(command))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    def _local(self, command: bytes) -> bytes:
        try:
            if command == b"health" and self.local_health is not None:
                return json.dumps(self._summary(self.local_health())).encode()
            if command == b"metrics" and self.local_metrics is not None:
                return self.local_metrics()
        except Exception:  # a bug in one report: the sibling shows this worker as down
            log.exception("worker %d: no %s for a sibling", self.index, command.decode())
        return b""

    def _summary(self, report: dict[str, Any]) -> dict[str, Any]:
        config = report.get("config") or {}
        return {
            "index": self.index,
            "pid": self.pid,
            "status": report.get("status", "unknown"),
            "config_generation": config.get("generation"),
            "uptime_seconds": report.get("uptime_seconds"),
        }

    # -- asking siblings --------------------------------------------------------------

    async def _ask_all(self, command: bytes) -> dict[int, bytes | None]:
        answers: dict[int, bytes | None] = {}

        async def ask(index: int) -> None:
            answers[index] = await ask_peer(socket_path(self.directory, index), command)

        async with trio.open_nursery() as nursery:
            for index in range(self.count):
                if index != self.index:
                    nursery.start_soon(ask, index)
        return answers

    async def health(self, report: dict[str, Any]) -> dict[str, Any]:
        """This worker's ``report`` with the group's ``workers`` section."""
        members = {self.index: self._summary(report)}
        for index, answer in (await self._ask_all(b"health")).items():
            members[index] = _decode_summary(index, answer)
        ordered = [members[i] for i in sorted(members)]
        up = sum(1 for m in ordered if m["status"] != "down")
        out = dict(report)
        if any(m["status"] != "healthy" for m in ordered):
            out["status"] = "degraded"
        out["workers"] = {
            "count": self.count,
            "up": up,
            "answered_by": {"index": self.index, "pid": self.pid},
            "members": ordered,
        }
        return out

    async def metrics(self, local: bytes) -> bytes:
        """Every worker's exposition, merged, each sample labelled by its worker."""
        texts = {self.index: local}
        for index, answer in (await self._ask_all(b"metrics")).items():
            if answer:
                texts[index] = answer
        return merge_expositions(texts)


def _decode_summary(index: int, answer: bytes | None) -> dict[str, Any]:
    down = {"index": index, "pid": None, "status": "down", "config_generation": None}
    if not answer:
        return down
    try:
        summary = json.loads(answer)
    except ValueError:
        return down
    return summary if isinstance(summary, dict) else down


async def ask_peer(path: str, command: bytes) -> bytes | None:
    """One sibling's answer, or None (not listening, or too slow)."""
    if command not in _COMMANDS:
        raise ValueError(command)
    with trio.move_on_after(PEER_TIMEOUT_S):
        try:
            stream = await trio.open_unix_socket(path)
        except OSError:
            return None
        async with stream:
            try:
                await stream.send_all(command + b"\n")
                chunks, size = [], 0
                while chunk := await stream.receive_some(65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > PEER_MAX_BYTES:
                        return None
                return b"".join(chunks)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return None
    return None


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def merge_expositions(texts: dict[int, bytes]) -> bytes:
    """One exposition of every worker's families, each sample with ``worker="<index>"``."""
    merged: dict[str, Metric] = {}
    for index in sorted(texts):
        for family in text_string_to_metric_families(texts[index].decode()):
            target = merged.get(family.name)
            if target is None:
                target = Metric(family.name, family.documentation, family.type, family.unit)
                merged[family.name] = target
            for sample in family.samples:
                labels = {**sample.labels, "worker": str(index)}
                target.samples.append(sample._replace(labels=labels))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(merged.values())))
    return generate_latest(registry)
