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

import contextlib
import datetime
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
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
    "write_lines",
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
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        line = self.line(
            record.created, record.levelno, record.name, _request_id(record), record.getMessage()
        )
        if record.exc_info and record.exc_info[1] is not None:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                return f"{line}\n{_traceback(self, record)}"  # DEBUG: the trace
            exc = record.exc_info[1]
            summary = redact.scrub(f" ({type(exc).__name__}: {str(exc)[:200]})")
            line += summary.translate(_ESCAPES)
        return line

    def line(
        self,
        created: float,
        levelno: int,
        name: str,
        rid: str | None,
        message: str,
        fields: Mapping[str, Any] | None = None,
    ) -> str:
        """One line from its parts (no record): what :meth:`format` writes for them."""
        message = message.translate(_ESCAPES)
        where = name if rid is None else f"{name} [{rid}]"
        if self.journald:
            return f"<{_priority(levelno)}>{where}: {message}"
        return f"{self._time(created)} {logging.getLevelName(levelno)} {where}: {message}"

    def _time(self, created: float) -> str:
        """``formatTime``'s text, with the seconds part formatted once per second."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(self.default_time_format, self.converter(created))
        return f"{self._stamp},{int((created - second) * 1000):03d}"  # default_msec_format


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring)."""

    def __init__(self, *, journald: bool = False) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, FIELDS, None)
        line = _object(
            record.created,
            record.levelname,
            record.name,
            _request_id(record),
            record.getMessage(),
            fields if isinstance(fields, Mapping) else None,
        )
        if record.exc_info and record.exc_info[1] is not None:
            line["exc"] = _traceback(self, record)
        return self._encoded(line, record.levelno)

    def line(
        self,
        created: float,
        levelno: int,
        name: str,
        rid: str | None,
        message: str,
        fields: Mapping[str, Any] | None = None,
    ) -> str:
        """One line from its parts (no record): what :meth:`format` writes for them."""
        line = _object(created, logging.getLevelName(levelno), name, rid, message, fields)
        return self._encoded(line, levelno)

    def _encoded(self, line: dict[str, Any], levelno: int) -> str:
        text = _encode(line).decode()
        return f"<{_priority(levelno)}>{text}" if self.journald else text


def _object(
    created: float,
    levelname: str,
    name: str,
    rid: str | None,
    message: str,
    fields: Mapping[str, Any] | None,
) -> dict[str, Any]:
    stamp = datetime.datetime.fromtimestamp(created, datetime.UTC)
    line: dict[str, Any] = {
        "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": levelname.lower(),
        "logger": name,
        "msg": message,
    }
    if rid is not None:
        line["request_id"] = rid
    if fields is not None:
        for key, value in fields.items():
            if key not in _RESERVED and value is not None:
                line[key] = value
    return line


def write_lines(
    name: str, levelno: int, lines: Sequence[tuple[float, str | None, str, Mapping[str, Any]]]
) -> bool:
    """Write many lines of logger ``name`` (each ``(created, request id, message, fields)``)
    through Lasso's handler in one write, formatted as :meth:`logging.Handler.format`
    would format their records. False, writing nothing, when Lasso's handler is not
    installed as set up (the caller then gives it the records one by one); other
    handlers are the caller's (:func:`installed`)."""
    handler = _Setup.handler
    if handler is None or not isinstance(handler, logging.StreamHandler):
        return False
    if levelno < handler.level:
        return True  # nothing of it is wanted there
    formatter = handler.formatter
    if not isinstance(formatter, TextFormatter | JsonFormatter):
        return False
    kinds = {type(f) for f in handler.filters}
    if not kinds <= {_RequestIdFilter, redact.SecretScrubber}:
        return False
    scrub = redact.scrub if redact.SecretScrubber in kinds else str
    text = "".join(
        formatter.line(created, levelno, name, rid, scrub(message), fields) + "\n"
        for created, rid, message, fields in lines
    )
    with handler.lock or contextlib.nullcontext():
        handler.stream.write(text)
        handler.flush()
    return True


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


def installed() -> logging.Handler | None:
    """Lasso's handler, if :func:`setup` installed it."""
    return _Setup.handler


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
