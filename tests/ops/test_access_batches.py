"""The access log's batched writes (lasso/accesslog.py, lasso.logsetup.write_lines).

A line written from its parts is the line the handler writes for the record of the
same parts, in both formats, journald or not; many calls make one write, not one
each; nothing waits longer than FLUSH_S; any other logging set-up still gets one
record per call."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from lasso import accesslog, logsetup
from lasso.logsetup import FIELDS, JsonFormatter, TextFormatter
from lasso.opsevents import OpsEvents


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def stream() -> Iterator[CountingStream]:
    """Lasso's handler on a counting stream; pytest's own capture handlers set aside, as
    in production, where Lasso's is the root logger's only handler."""
    out = CountingStream()
    root = logging.getLogger()
    others = list(root.handlers)
    for handler in others:
        root.removeHandler(handler)
    logsetup.setup(None, stream=out, env={}, force=True)
    accesslog._pending.clear()
    try:
        yield out
    finally:
        accesslog._pending.clear()
        logsetup.teardown()
        for handler in others:
            root.addHandler(handler)


@settings(max_examples=200, deadline=None)
@given(
    message=st.text(max_size=60),
    rid=st.none() | st.text(alphabet="abc-0123456789", min_size=1, max_size=12),
    created=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]),
    journald=st.booleans(),
    fields=st.dictionaries(
        st.sampled_from(["method", "chain", "total_ms", "code", "msg"]),
        st.none() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False),
        max_size=4,
    ),
)
def test_a_line_from_its_parts_is_the_records_line(
    message: str,
    rid: str | None,
    created: float,
    level: int,
    journald: bool,
    fields: dict[str, object],
) -> None:
    record = logging.LogRecord("lasso.access", level, __file__, 0, "%s", (message,), None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    record.request_id = rid
    record.__dict__[FIELDS] = fields
    for formatter in (TextFormatter(journald=journald), JsonFormatter(journald=journald)):
        assert formatter.line(created, level, "lasso.access", rid, message, fields) == (
            formatter.format(record)
        )


def finished_call(i: int) -> tuple[float, str | None, str, dict[str, object]]:
    return (1_700_000_000.0 + i, f"r-{i}", f"http default/devnet eth_call ok #{i}", {"n": i})


def test_many_calls_make_one_write(stream: CountingStream) -> None:
    accesslog._pending.extend(finished_call(i) for i in range(100))
    accesslog.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 100 and stream.writes == 1  # before: one write per line
    assert lines[7].endswith(" INFO lasso.access [r-7]: http default/devnet eth_call ok #7")


async def test_nothing_waits_longer_than_the_flush_period(
    stream: CountingStream, autojump_clock: trio.testing.MockClock
) -> None:
    switch = accesslog.AccessLogSwitch(OpsEvents())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(switch.run)
        accesslog._pending.append(finished_call(1))
        assert stream.getvalue() == ""
        await trio.sleep(accesslog.FLUSH_S)
        await trio.testing.wait_all_tasks_blocked()
        assert "eth_call ok #1" in stream.getvalue()
        accesslog._pending.append(finished_call(2))
        nursery.cancel_scope.cancel()  # the daemon stops: what waits is written
    assert "eth_call ok #2" in stream.getvalue()


def test_another_logging_set_up_gets_one_record_per_call(
    stream: CountingStream, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lasso.access"):
        accesslog._pending.extend(finished_call(i) for i in range(3))
        accesslog.flush()
    records = [r for r in caplog.records if r.name == "lasso.access"]
    assert [r.getMessage()[-2:] for r in records] == ["#0", "#1", "#2"]
    assert records[1].request_id == "r-1" and records[1].created == 1_700_000_001.0
