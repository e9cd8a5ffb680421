"""The decisions behind systemd's notify protocol (sd_notify(3)), without the socket.

``lasso.sdnotify`` sends; this module decides what and when:

- :func:`notify_address`: where ``$NOTIFY_SOCKET`` points (a path, or an abstract socket
  written ``@name``), or nothing to do;
- :func:`watchdog_period_s`: how often to send ``WATCHDOG=1``, half of
  ``$WATCHDOG_USEC``, and only when ``$WATCHDOG_PID`` (if set) names this process, as
  sd_watchdog_enabled(3) says;
- :func:`encode`: one datagram, ``KEY=value`` lines;
- :class:`RequestRate`: requests per second over the last status interval, counted from
  the calls that actually finished;
- :func:`status_text`: the ``STATUS=`` line ``systemctl status`` shows.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "RequestRate",
    "encode",
    "notify_address",
    "status_text",
    "watchdog_period_s",
]


def notify_address(value: str | None) -> str | None:
    """The ``AF_UNIX`` address ``$NOTIFY_SOCKET`` names, or None when there is none to use.

    ``/path`` is a socket file; ``@name`` is Linux's abstract namespace (a leading NUL).
    Anything else (empty, relative, ``vsock:`` of newer systemd) is not for us.
    """
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_period_s(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, as systemd asks.

    None when the watchdog is off: no or a malformed ``$WATCHDOG_USEC``, zero, or a
    ``$WATCHDOG_PID`` naming another process (the variables were inherited).
    """
    usec = _positive_int(environ.get("WATCHDOG_USEC"))
    if usec is None:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner is not None and _positive_int(owner) != pid:
        return None
    return usec / 2 / 1_000_000


def _positive_int(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    value = int(text)
    return value if value > 0 else None


def encode(*fields: tuple[str, str]) -> bytes:
    """One notify datagram: ``KEY=value`` lines. A value never spans lines (a newline
    would start a new assignment), so newlines in it become spaces."""
    lines = (f"{key}={value.replace(chr(10), ' ')}" for key, value in fields)
    return "\n".join(lines).encode()


class RequestRate:
    """Finished calls per second between two readings.

    ``add`` is called once per finished call (a request observer); ``per_second(now)``
    gives the rate since the previous reading (or since ``started``) and starts a new
    interval. ``now`` is the caller's clock (``trio.current_time()``).
    """

    __slots__ = ("_count", "_since")

    def __init__(self, started: float) -> None:
        self._count = 0
        self._since = started

    def add(self, calls: int = 1) -> None:
        self._count += calls

    def per_second(self, now: float) -> float:
        elapsed = now - self._since
        count, self._count, self._since = self._count, 0, now
        return count / elapsed if elapsed > 0 else 0.0


def status_text(channels_up: int, channels: int, per_second: float) -> str:
    """What ``systemctl status lasso`` shows on its ``Status:`` line."""
    return f"serving: {channels_up}/{channels} provider channels up, {per_second:.1f} req/s"
