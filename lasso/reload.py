"""Reloading the settings file (SIGHUP), keeping the last-known-good settings.

Theory of operation. ``ReloadState`` holds the settings the gateway runs on (the
last-known-good, generation 1 at start) and the last attempt's outcome. One
attempt (``reload_once`` does exactly this; ``serve_reloads`` does it for each
SIGHUP, one at a time) is::

    outcome = attempt_reload(path, state, Stamp.now(trio.current_time()))
    if outcome.to_apply is not None:        # a good file that changes something
        try:
            apply(outcome.to_apply, outcome.diff)   # the registry's work
        except Exception as exc:
            state.apply_failed(outcome, str(exc))   # LKG kept, /health says why
        else:
            state.applied(outcome)                  # generation + 1, LKG = to_apply

``attempt_reload`` reads the file with ``load_settings``, exactly as ``lasso
check-config`` does. A bad file is *rejected*: every problem is logged on its
own line with its field path, the last-known-good stays, the gateway keeps
serving. A good file is diffed against the last-known-good (``diff.py``);
restart-only keys (``server.port``...) are logged as needing a restart and kept
at their running values in ``to_apply``. A file that changes nothing to apply is
*unchanged* and the generation stays. Attempts must not overlap: the caller runs
them one at a time (SIGHUPs arrive on one signal receiver).

``statistics()`` is what ``/health`` shows: the generation, the last attempt's
time and outcome, its problems, and the keys waiting for a restart.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Literal

import msgspec
import trio

from lasso import redact
from lasso.config import ConfigError, ConfigProblem, Settings, load_settings
from lasso.config.classify import restart_only_keys
from lasso.config.diff import SettingsDiff, diff_settings, keep_running
from lasso.sdnotify import SdNotify

__all__ = [
    "ReloadOutcome",
    "ReloadRecord",
    "ReloadState",
    "ReloadStatistics",
    "Stamp",
    "attempt_reload",
    "reload_once",
    "serve_reloads",
]

log = logging.getLogger("lasso.reload")

#: What ``attempt_reload`` decided: something to apply, a bad file, or nothing to do.
Decision = Literal["apply", "rejected", "unchanged"]
#: How the last attempt ended, as ``/health`` shows it.
Result = Literal["applied", "rejected", "unchanged"]


class Stamp(msgspec.Struct, frozen=True):
    """When something happened: wall-clock ISO 8601 (UTC) and the monotonic clock."""

    wall: str
    monotonic: float

    @classmethod
    def now(cls, monotonic: float) -> Stamp:
        """Now on the wall clock; ``monotonic`` is the caller's (``trio.current_time()``)."""
        wall = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        return cls(wall, monotonic)


class ReloadOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt. With ``decision == "apply"``, ``to_apply`` holds the settings to
    publish (restart-only keys at their running values) and ``diff`` what to do;
    the caller then reports back with ``ReloadState.applied`` or ``apply_failed``."""

    decision: Decision
    at: Stamp
    source: str
    generation: int  # the generation this attempt would make (or left) current
    to_apply: Settings | None = None
    diff: SettingsDiff | None = None
    problems: tuple[ConfigProblem, ...] = ()
    needs_restart: tuple[str, ...] = ()


class ReloadRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The last attempt as ``/health`` shows it."""

    outcome: Result
    at: str
    at_monotonic: float
    problems: tuple[ConfigProblem, ...] = ()
    summary: str = ""
    #: The generation serving after this attempt.
    generation: int = 0


#: How many reload records ``ReloadState.history`` keeps (the dashboard's reload history).
KEEP_HISTORY = 32


class ReloadStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """``/health``'s ``config`` section."""

    source: str
    generation: int
    last_reload: ReloadRecord | None
    needs_restart: tuple[str, ...]


class ReloadState:
    """The running settings (last-known-good), their generation, the last attempt."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: str,
        adjust: Callable[[Settings], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        #: Applied to each re-read file (``lasso up``: lasso.devnet.follow); a ValueError
        #: out of it rejects the reload.
        self.adjust = adjust
        self.generation = 1
        self.last: ReloadRecord | None = None
        #: The last KEEP_HISTORY attempts, oldest first (the dashboard shows them).
        self.history: deque[ReloadRecord] = deque(maxlen=KEEP_HISTORY)
        self.needs_restart: tuple[str, ...] = ()
        #: Told each attempt's end: ``(generation running, result, summary)``; the
        #: daemon publishes it as a ``Reloaded`` operator event (lasso.opspublish).
        self.on_record: Callable[[int, Result, str], None] | None = None

    def applied(self, outcome: ReloadOutcome) -> None:
        """The caller applied ``outcome.to_apply``: it is now the last-known-good."""
        if outcome.to_apply is None or outcome.diff is None:
            raise ValueError(f"nothing to apply in a {outcome.decision!r} outcome")
        if outcome.generation != self.generation + 1:
            raise ValueError("a reload outcome applied twice or out of order")
        self.settings = outcome.to_apply
        self.generation = outcome.generation
        self.record(outcome, "applied", summary=outcome.diff.summary())
        log.info("config generation %d applied: %s", self.generation, outcome.diff.summary())

    def apply_failed(self, outcome: ReloadOutcome, reason: str) -> None:
        """The caller could not apply ``outcome``; the last-known-good stays."""
        problem = ConfigProblem(path="", message=f"could not apply the new settings: {reason}")
        self.record(outcome, "rejected", problems=(problem,))
        log.error(
            "reload of %s failed: %s; still serving generation %d",
            self.source,
            problem.message,
            self.generation,
        )

    def statistics(self) -> ReloadStatistics:
        return ReloadStatistics(
            source=self.source,
            generation=self.generation,
            last_reload=self.last,
            needs_restart=self.needs_restart,
        )

    def record(
        self,
        outcome: ReloadOutcome,
        result: Result,
        *,
        problems: tuple[ConfigProblem, ...] = (),
        summary: str = "",
    ) -> None:
        """Remember ``outcome`` as the last attempt, ending as ``result``."""
        self.last = ReloadRecord(
            outcome=result,
            at=outcome.at.wall,
            at_monotonic=outcome.at.monotonic,
            problems=problems,
            summary=summary,
            generation=self.generation,
        )
        self.history.append(self.last)
        if self.on_record is not None:
            count = len(problems)
            told = summary or (f"{count} problem{'' if count == 1 else 's'}" if count else "")
            self.on_record(self.generation, result, told)


def attempt_reload(
    path: str | os.PathLike[str],
    state: ReloadState,
    now: Stamp,
    *,
    env: Mapping[str, str] | None = None,
) -> ReloadOutcome:
    """Re-read ``path`` as ``lasso check-config`` does and decide what to apply.

    ``env`` defaults to ``os.environ``. Rejected and unchanged attempts are
    recorded in ``state`` here; one with something to apply is recorded when the
    caller reports back (``state.applied`` / ``state.apply_failed``).
    """
    source = os.fspath(path)
    try:
        new = load_settings(source, env=env)
        if state.adjust is not None:
            new = state.adjust(new)
    except ConfigError as error:
        return _rejected(source, state, now, tuple(error.problems))
    except ValueError as error:
        return _rejected(source, state, now, (ConfigProblem(path="", message=str(error)),))
    redact.update(new)  # its secrets are masked before anything about it is logged
    diff = diff_settings(state.settings, new)
    state.needs_restart = diff.restart_only
    _log_needs_restart(diff.restart_only)
    if diff.empty:
        outcome = ReloadOutcome(
            decision="unchanged",
            at=now,
            source=source,
            generation=state.generation,
            diff=diff,
            needs_restart=diff.restart_only,
        )
        state.record(outcome, "unchanged", summary=diff.summary())
        log.info("reload of %s: nothing to apply (generation %d)", source, state.generation)
        return outcome
    for line in diff.lines():
        log.info("reload: %s", line)
    return ReloadOutcome(
        decision="apply",
        at=now,
        source=source,
        generation=state.generation + 1,
        to_apply=keep_running(state.settings, new),
        diff=diff,
        needs_restart=diff.restart_only,
    )


def _rejected(
    source: str, state: ReloadState, now: Stamp, problems: tuple[ConfigProblem, ...]
) -> ReloadOutcome:
    count = len(problems)
    log.error(
        "reload of %s rejected (%d problem%s); still serving generation %d",
        source,
        count,
        "" if count == 1 else "s",
        state.generation,
    )
    for problem in problems:
        log.error("reload rejected: %s", problem)
    outcome = ReloadOutcome(
        decision="rejected",
        at=now,
        source=source,
        generation=state.generation,
        problems=problems,
        needs_restart=state.needs_restart,
    )
    state.record(outcome, "rejected", problems=problems)
    return outcome


#: Applies an outcome with ``decision == "apply"``: publish ``to_apply``, act on ``diff``.
Apply = Callable[[ReloadOutcome], Awaitable[None]]


async def reload_once(
    path: str | os.PathLike[str], state: ReloadState, apply: Apply
) -> ReloadOutcome:
    """One reload: attempt, apply if there is something to apply, record the result."""
    # The file is read on the event loop: a settings file is small and local (loading
    # the shipped one takes about a millisecond), and a thread would let a /health
    # read see the state half-recorded.
    outcome = attempt_reload(path, state, Stamp.now(trio.current_time()))
    if outcome.decision != "apply":
        return outcome
    try:
        await apply(outcome)
    except Exception as exc:  # never Cancelled: a shutdown mid-apply is not a failed reload
        log.exception("applying generation %d failed", outcome.generation)
        state.apply_failed(outcome, redact.scrub(f"{type(exc).__name__}: {exc}"))
    else:
        state.applied(outcome)
    return outcome


async def serve_reloads(
    requests: AsyncIterator[object],
    path: str | os.PathLike[str],
    state: ReloadState,
    apply: Apply,
    *,
    notify: SdNotify | None = None,
) -> None:
    """Reload once per item of ``requests`` (e.g. a SIGHUP receiver), one at a time, so
    attempts never overlap; signals that arrive meanwhile wait their turn. ``notify``
    tells systemd RELOADING=1 before each attempt and READY=1 after it, whatever its
    outcome (a rejected file leaves the gateway serving its last-known-good)."""
    async for _ in requests:
        if notify is not None:
            notify.reloading(f"reloading {os.fspath(path)}")
        outcome = await reload_once(path, state, apply)
        if notify is not None:
            notify.ready(_reload_status(outcome, state))


def _reload_status(outcome: ReloadOutcome, state: ReloadState) -> str:
    result = state.last.outcome if state.last is not None else outcome.decision
    return f"reload {result}: serving config generation {state.generation}"


def _log_needs_restart(keys: tuple[str, ...]) -> None:
    reasons = restart_only_keys()
    for key in keys:
        log.warning(
            "reload: %s changed but needs a restart (%s); kept as running", key, reasons[key]
        )
