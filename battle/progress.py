"""What the runner shows while a battle runs: a rich progress bar, or plain lines.

On a terminal, :class:`RichProgress` draws one bar per phase (the environment, fuzzing, each
scenario) that fills with the time spent against the phase's budget, with the elapsed time and,
once done, its outcome. Rich redraws from its own refresh thread; the runner only adds and
finishes tasks (rich locks those). When stdout is not a TTY (CI, a pipe) :class:`PlainProgress`
prints one line when a phase starts and one when it ends, so a log stays readable::

    with progress.shown():
        with progress.phase("provider-killed", total_s=40) as phase:
            ...
            phase.outcome = "pass"
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Task


class Phase:
    """One running phase: its name, budget, start and the outcome to show when it ends."""

    def __init__(self, name: str, total_s: float | None) -> None:
        self.name = name
        self.total_s = total_s
        self.started_at = time.monotonic()
        self.outcome = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at


class Progress(Protocol):
    def shown(self) -> AbstractContextManager[None]: ...

    def phase(self, name: str, total_s: float | None = None) -> AbstractContextManager[Phase]: ...

    def line(self, text: str) -> None: ...


class PlainProgress:
    """A line when a phase starts and one when it ends (with its time and outcome)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    def line(self, text: str) -> None:
        print(text, file=self._out or sys.stdout, flush=True)

    @contextmanager
    def shown(self) -> Iterator[None]:
        yield

    @contextmanager
    def phase(self, name: str, total_s: float | None = None) -> Iterator[Phase]:
        phase = Phase(name, total_s)
        budget = f" (~{total_s:.0f} s)" if total_s else ""
        self.line(f"battle: {name}: started{budget}")
        try:
            yield phase
        finally:
            outcome = phase.outcome or "stopped"
            self.line(f"battle: {name}: {outcome} ({phase.elapsed():.1f} s)")


class RichProgress:
    """One rich bar per phase, filled by the time spent against the phase's budget."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.progress import Progress as Bars
        from rich.progress import TextColumn, TimeElapsedColumn

        self._bars = Bars(
            TextColumn("[bold]{task.description:<28}"),
            _time_bar(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[budget]}"),
            TextColumn("{task.fields[outcome]}"),
            refresh_per_second=4,
            console=console,
        )

    def line(self, text: str) -> None:
        self._bars.console.print(text, highlight=False, markup=False)

    @contextmanager
    def shown(self) -> Iterator[None]:
        with self._bars:
            yield

    @contextmanager
    def phase(self, name: str, total_s: float | None = None) -> Iterator[Phase]:
        phase = Phase(name, total_s)
        budget = f"/ {total_s:.0f} s" if total_s else ""
        task = self._bars.add_task(name, total=total_s or None, budget=budget, outcome="")
        try:
            yield phase
        finally:
            self._bars.update(
                task, total=total_s or 1.0, completed=total_s or 1.0, outcome=phase.outcome
            )
            self._bars.stop_task(task)


def _time_bar() -> Any:
    """A bar column that fills with the task's elapsed time (its total is seconds)."""
    from rich.progress import ProgressColumn
    from rich.progress_bar import ProgressBar

    class TimeBar(ProgressColumn):
        def render(self, task: Task) -> ProgressBar:
            if task.total is None:
                return ProgressBar(total=None, width=30, pulse=not task.finished)
            done = task.total if task.finished else min(task.elapsed or 0.0, task.total)
            return ProgressBar(total=task.total, completed=done, width=30)

    return TimeBar()


def for_stdout() -> Progress:
    """A bar on a terminal, plain lines otherwise (CI)."""
    return RichProgress() if sys.stdout.isatty() else PlainProgress()
