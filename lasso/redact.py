"""The process's secrets, and the places text leaves through: logs and error answers.

One process-wide :class:`lasso.core.mask.Redactor` knows every secret value the
configuration holds (:func:`lasso.config.secrets.secret_values`): provider URL
credentials (userinfo, query values, key-like path segments), header values,
provider ``api_key`` values and client API keys. :func:`install` sets it at start-up
and puts a :class:`SecretScrubber` on the root logger's handlers; :func:`update` adds
a reloaded configuration's secrets. A secret once known stays known for the life of
the process: a removed provider still drains, and its old URL may still be quoted.

What goes through it:

- every log record that reaches a root handler (:class:`SecretScrubber`): the
  formatted message, the traceback text, the stack text and any string ``extra``;
- every error message Lasso composes from an upstream failure
  (:func:`scrub`, at the adapter edge and in :meth:`lasso.outcome.Outcome.failed`,
  so ``attempts`` in routing metadata and ``error.data`` are clean);
- every error answer (:func:`scrub_error`), including a node's own error object
  passed through, which is changed only if it quotes one of our secrets;
- an uncaught exception's traceback (:func:`scrubbing_excepthook`).

Lasso masks URLs by shape (:func:`lasso.core.mask.mask_url`) as well, so a URL it
was never configured with (a redirect target, a peer's) is masked in those places too.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lasso.config.secrets import secret_values
from lasso.core.mask import Redactor
from lasso.errors import LassoError, UpstreamRpcError

if TYPE_CHECKING:
    from lasso.config import Settings

__all__ = [
    "SecretScrubber",
    "current",
    "install",
    "scrub",
    "scrub_error",
    "scrubbing_excepthook",
    "update",
]

_redactor = Redactor()


def current() -> Redactor:
    """The process's redactor (every secret known so far)."""
    return _redactor


def update(settings: Settings) -> Redactor:
    """Learn ``settings``' secrets (keeping the ones already known); call on every reload."""
    global _redactor
    _redactor = _redactor.with_secrets(secret_values(settings))
    return _redactor


def install(settings: Settings | None = None, logger: logging.Logger | None = None) -> None:
    """Learn ``settings``' secrets and put a :class:`SecretScrubber` on every handler of
    ``logger`` (the root logger by default) that has none yet. Idempotent; call it again
    after adding handlers. For the root logger, an uncaught exception's traceback (which
    Python prints itself, outside logging) is scrubbed too, unless someone else already
    replaced ``sys.excepthook``."""
    if settings is not None:
        update(settings)
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, SecretScrubber) for f in handler.filters):
            handler.addFilter(SecretScrubber())
    if logger is None and sys.excepthook is sys.__excepthook__:
        sys.excepthook = scrubbing_excepthook


def scrubbing_excepthook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """``sys.excepthook`` printing the traceback as Python would, scrubbed."""
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(_redactor.scrub(text))


def scrub(text: str) -> str:
    """``text`` with every known secret and every URL masked."""
    return _redactor.scrub(text)


def scrub_error(exc: LassoError) -> LassoError:
    """``exc`` fit to answer a client with: its message and string data scrubbed (in
    place: the error is about to be answered and dropped). A node's own error object is
    left byte for byte unless it quotes one of our secrets."""
    if isinstance(exc, UpstreamRpcError):
        exc.raw_error = _redactor.scrub_known(exc.raw_error)
    exc.message = _redactor.scrub(exc.message)
    if exc.data is not None:
        exc.data = _scrub_data(exc.data)
    return exc


def _scrub_data(value: Any) -> Any:
    if isinstance(value, str):
        return _redactor.scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_data(v) for v in value]
    return value


#: LogRecord attributes that are never free text (the rest of ``__dict__`` may be an extra).
_PLAIN_ATTRS = frozenset(
    {"name", "levelname", "pathname", "filename", "module", "funcName", "threadName"}
    | {"processName", "taskName", "asctime", "msg", "args", "exc_text", "stack_info"}
)


class SecretScrubber(logging.Filter):
    """A handler filter that masks secrets in the record before any formatter sees it.

    The message is formatted here (``record.msg`` becomes the scrubbed text and
    ``record.args`` empty), the traceback is formatted once into ``record.exc_text``
    (which ``logging.Formatter`` uses as is) and scrubbed, and string extras are
    scrubbed, so a JSON formatter reading them gets clean values too. Never drops a
    record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = _redactor
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let logging report it as usual
            return True
        record.msg, record.args = redactor.scrub(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.scrub(record.stack_info)
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and name not in _PLAIN_ATTRS:
                setattr(record, name, redactor.scrub(value))
        return True
