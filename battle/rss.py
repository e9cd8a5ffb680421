"""The gateway process's resident set size over time, from ``/proc/<pid>/status``.

:func:`parse_vmrss` is the pure part (the ``VmRSS:`` line, in kB, as bytes);
:func:`sample_rss` records a :class:`~battle.events.ResourceSample` every ``every_s`` for
``duration_s`` and stops quietly once the process is gone (no file, or a zombie without
``VmRSS``).
"""

from __future__ import annotations

import trio

from battle.events import Recorder, ResourceSample

_UNITS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "b": 1}


def parse_vmrss(status: str) -> int | None:
    """Bytes of the ``VmRSS:`` line of a ``/proc/<pid>/status`` text; None without one."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name != "VmRSS":
            continue
        parts = value.split()
        if not parts or not parts[0].isdigit():
            return None
        unit = parts[1].lower() if len(parts) > 1 else "kb"
        scale = _UNITS.get(unit)
        return None if scale is None else int(parts[0]) * scale
    return None


def read_rss(pid: int) -> int | None:
    """The process's RSS now; None when it is gone.

    A synchronous read on purpose: procfs is kernel memory and never waits on a disk, and a
    worker thread would make every sample a trip through the thread pool.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            return parse_vmrss(status.read())
    except (FileNotFoundError, ProcessLookupError):
        return None


async def sample_rss(
    pid: int, recorder: Recorder, duration_s: float, every_s: float = 0.25
) -> None:
    """Record ``pid``'s RSS every ``every_s`` for ``duration_s``, until it exits."""
    with trio.move_on_after(duration_s):
        deadline = trio.current_time()
        while (rss := read_rss(pid)) is not None:
            recorder.record(ResourceSample(rss, trio.current_time()))
            deadline += every_s
            await trio.sleep_until(max(deadline, trio.current_time()))
