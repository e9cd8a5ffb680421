"""Where Redis is: ``[shared] redis_url`` parsed (pure; the config check uses it too)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import msgspec

__all__ = ["RedisAddress", "parse_redis_url"]


class RedisAddress(msgspec.Struct, frozen=True):
    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never the password
        auth = "" if self.password is None else "***@"
        return f"redis://{auth}{self.host}:{self.port}/{self.db}"

    def __repr__(self) -> str:
        return f"RedisAddress({self})"


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]``; raises ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError("expected redis://[[user]:password@]host[:port][/db]")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("the path must be a database number")
    return RedisAddress(
        host=parts.hostname,
        port=parts.port or 6379,
        db=int(path or 0),
        username=unquote(parts.username) if parts.username else None,
        password=None if parts.password is None else unquote(parts.password),
    )
