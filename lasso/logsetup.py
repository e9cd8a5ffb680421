"""How Lasso's log lines look: text or JSON lines, one line per event, journald-aware.

One handler on the root logger writes every line (Lasso's, hypercorn's) to
stderr. :func:`setup` installs it when the command line starts (with
``--log-level``); :func:`apply` then applies the settings' ``[logging]`` table,
at start and again at each reload (SIGHUP), so ``format`` and ``level`` change
without a restart.

Level: ``--log-level`` (or ``$LASSO_LOG_LEVEL``) wins when given; otherwise
``[logging] level``; otherwise ``info``.

Text (``format = "text"``)::

    2026-12-05 07:30:00,123 WARNING lasso.events [3f9a1c-1b]: breaker open: ...

The request id (:mod:`lasso.reqid`) follows the logger name for a line written
while a client request is handled. Control characters in a message (a newline
a client smuggled into a method name) are escaped, so one event is one line. A
traceback is printed only when the level is DEBUG (as before); otherwise the
exception is summed up on the same line.

Under systemd (``$JOURNAL_STREAM`` names our stderr, see systemd.exec(5)) text
lines start with the ``<N>`` syslog priority that journald reads (sd-daemon(3))
and carry no timestamp (journald stamps each line); JSON lines get the prefix
too (journald strips it, the stored message stays pure JSON).

JSON (``format = "json"``): one object per line, encoded by msgspec::

    {"ts":"2026-12-05T07:30:00.123Z","level":"warning","logger":"lasso.events",
     "msg":"breaker open: ...","request_id":"3f9a1c-1b","event":"breaker",
     "profile":"default","chain":"ethereum","provider":"alchemy",...}

Structured fields come from ``extra={"lasso_fields": {...}}`` (the operator
events and the access log use it); a traceback goes in ``exc``, escaped into the
one line. No colours, ever.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from collections.abc import Mapping
from typing import IO, Any, Final

import msgspec

from lasso import redact, reqid

__all__ = [
    "FIELDS",
    "FORMATS",
    "JsonFormatter",
    "TextFormatter",
    "apply",
    "journald_stream",
    "setup",
    "teardown",
]

FORMATS: Final = ("text", "json")
#: The ``extra`` key carrying a line's structured fields.
FIELDS: Final = "lasso_fields"
_RESERVED: Final = frozenset({"ts", "level", "logger", "msg", "request_id", "exc"})
_SYSLOG: Final = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
# Every C0 control character but tab, and DEL, escaped: one event is one line.
_ESCAPES: Final = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c != 0x09} | {
    0x0A: "\\n",
    0x0D: "\\r",
}
_encode = msgspec.json.Encoder(enc_hook=repr).encode  # a field it cannot encode: its repr


def _priority(levelno: int) -> int:
    """The syslog priority of a level (a custom level takes the one below it)."""
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _SYSLOG[threshold]
    return 7


def _request_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", None)
    return value if isinstance(value, str) else None


class _RequestIdFilter(logging.Filter):
    """Stamps each record with the request id of the request it was written for."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = reqid.current()
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id]: message``; journald: ``<N>logger: message``."""

    def __init__(self, *, journald: bool = False) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().translate(_ESCAPES)
        rid = _request_id(record)
        where = record.name if rid is None else f"{record.name} [{rid}]"
        if self.journald:
            line = f"<{_priority(record.levelno)}>{where}: {message}"
        else:
            line = f"{self.formatTime(record)} {record.levelname} {where}: {message}"
        if record.exc_info and record.exc_info[1] is not None:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                return f"{line}\n{_traceback(self, record)}"  # DEBUG: the trace
            exc = record.exc_info[1]
            summary = redact.scrub(f" ({type(exc).__name__}: {str(exc)[:200]})")
            line += summary.translate(_ESCAPES)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring)."""

    def __init__(self, *, journald: bool = False) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = _request_id(record)
        if rid is not None:
            line["request_id"] = rid
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                if key not in _RESERVED and value is not None:
                    line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["exc"] = _traceback(self, record)
        text = _encode(line).decode()
        return f"<{_priority(record.levelno)}>{text}" if self.journald else text


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's traceback: the scrubbed text lasso.redact's filter left, if it ran."""
    if record.exc_text:
        return record.exc_text
    assert record.exc_info is not None
    return redact.scrub(formatter.formatException(record.exc_info))


def journald_stream(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """Whether ``stream`` goes to journald: ``$JOURNAL_STREAM`` is set and names it.

    systemd sets ``JOURNAL_STREAM=<device>:<inode>`` of the stream it connected
    to the journal; a stream redirected elsewhere (another device or inode) is not
    it. A stream with no file descriptor (a test's buffer) follows the variable.
    """
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        device, inode = (int(part) for part in value.split(":"))
    except ValueError:
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return True
    return (stat.st_dev, stat.st_ino) == (device, inode)


class _Setup:
    """The one handler Lasso installed, and the level the command line asked for."""

    handler: logging.Handler | None = None
    cli_level: str | None = None
    journald = False


def setup(
    cli_level: str | None,
    *,
    stream: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
    force: bool = False,
) -> logging.Handler | None:
    """Install the handler (text, ``cli_level`` or info); replaces one installed before.

    Like ``logging.basicConfig``, it does nothing when the root logger already has a
    handler that is not ours (an embedding program's, pytest's) unless ``force``.
    """
    root = logging.getLogger()
    if _Setup.handler is not None:
        root.removeHandler(_Setup.handler)
        _Setup.handler = None
    if root.handlers and not force:
        return None
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.addFilter(_RequestIdFilter())
    _Setup.journald = journald_stream(stream, env)
    handler.setFormatter(TextFormatter(journald=_Setup.journald))
    root.addHandler(handler)
    _Setup.handler, _Setup.cli_level = handler, cli_level
    root.setLevel((cli_level or "info").upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def apply(format: str = "text", level: str | None = None) -> None:
    """The settings' ``[logging]`` format and level (the command line's level wins).

    Nothing happens unless :func:`setup` installed the handler (the logging belongs
    to whoever set it up otherwise).
    """
    handler = _Setup.handler
    if handler is None:
        return
    formatter = JsonFormatter if format == "json" else TextFormatter
    handler.setFormatter(formatter(journald=_Setup.journald))
    logging.getLogger().setLevel((_Setup.cli_level or level or "info").upper())


def teardown() -> None:
    """Remove the handler :func:`setup` installed (tests)."""
    if _Setup.handler is not None:
        logging.getLogger().removeHandler(_Setup.handler)
        _Setup.handler = None
