"""``redis_server``: a started :class:`RedisServer` of the test's own (skips without one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shared.redisserver import REDIS_SERVER, SKIP_REASON, RedisServer


def start_redis(workdir: Path, password: str | None = None) -> RedisServer:
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    for _ in range(3):  # a free port can be taken between our probe and its bind
        server = RedisServer(workdir, password)
        try:
            server.start()
        except RuntimeError:
            server.stop()
            continue
        return server
    raise RuntimeError("could not start redis-server on a free port")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path)
    try:
        yield server
    finally:
        server.stop()
