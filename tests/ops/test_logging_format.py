"""Log lines as an operator's tools read them: text or JSON, one line per event, journald.

Each test installs Lasso's handler (``lasso.logsetup.setup``, forced past
pytest's own) on a buffer and reads what it wrote.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lasso import logsetup, reqid
from lasso.config import ConfigError, parse_settings
from lasso.config.schema import LoggingConfig
from lasso.logsetup import FIELDS

log = logging.getLogger("lasso.test")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    logsetup.setup("info", stream=buffer, env={}, force=True)
    try:
        yield buffer
    finally:
        logsetup.teardown()
        root.setLevel(level)


def written(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def boom() -> None:
    raise ValueError("bad\nthing")


def test_json_lines_parse_one_per_line_even_with_a_traceback(stream: io.StringIO) -> None:
    logsetup.apply("json")
    log.info("hello %s", "world", extra={FIELDS: {"chain": "ethereum", "count": 3}})
    try:
        boom()
    except ValueError:
        log.exception("it failed:\nsecond line")
    lines = written(stream)
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "info" and first["logger"] == "lasso.test"
    assert first["msg"] == "hello world"
    assert (first["chain"], first["count"]) == ("ethereum", 3)
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert "request_id" not in first  # outside a request
    assert second["level"] == "error"
    assert second["msg"] == "it failed:\nsecond line"  # escaped inside the one line
    assert "Traceback" in second["exc"] and "ValueError: bad\nthing" in second["exc"]


def test_a_line_about_a_request_carries_its_id(stream: io.StringIO) -> None:
    logsetup.apply("json")
    token = reqid.begin(b"client-id-42")
    try:
        log.warning("inside")
    finally:
        reqid.end(token)
    token = reqid.begin(None)  # none sent: one is made for the line
    try:
        log.warning("made")
        made = reqid.peek()
    finally:
        reqid.end(token)
    inside, second = (json.loads(line) for line in written(stream))
    assert inside["request_id"] == "client-id-42"
    assert made is not None and second["request_id"] == made


def test_text_lines_escape_control_characters_and_keep_tracebacks_for_debug(
    stream: io.StringIO,
) -> None:
    log.warning("method %s", "eth_call\n2026-01-01 CRITICAL lasso: injected\r\x1b[31m")
    try:
        boom()
    except ValueError:
        log.exception("failed")
    lines = written(stream)
    assert len(lines) == 2
    assert lines[0].endswith(
        "WARNING lasso.test: method eth_call\\n2026-01-01 CRITICAL lasso: injected\\r\\x1b[31m"
    )
    assert lines[1].endswith("ERROR lasso.test: failed (ValueError: bad\\nthing)")
    logging.getLogger().setLevel(logging.DEBUG)  # as --log-level debug
    try:
        boom()
    except ValueError:
        log.exception("failed again")
    assert "Traceback (most recent call last):" in written(stream)[3]


def test_journald_lines_carry_the_priority_and_no_timestamp() -> None:
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    logsetup.setup("info", stream=buffer, env={"JOURNAL_STREAM": "8:12345"}, force=True)
    try:
        log.warning("breaker open")
        log.info("hello")
        log.error("bad")
        logsetup.apply("json")
        log.info("as json")
    finally:
        logsetup.teardown()
        root.setLevel(level)
    text = written(buffer)
    assert text[:3] == ["<4>lasso.test: breaker open", "<6>lasso.test: hello", "<3>lasso.test: bad"]
    assert text[3].startswith("<6>{")
    assert json.loads(text[3][3:])["msg"] == "as json"


def test_journald_is_only_the_stream_the_variable_names(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("w") as file:
        stat = os.fstat(file.fileno())
        named = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        assert logsetup.journald_stream(file, named)
        assert not logsetup.journald_stream(file, {"JOURNAL_STREAM": f"{stat.st_dev}:1"})
        assert not logsetup.journald_stream(file, {})
        assert not logsetup.journald_stream(file, {"JOURNAL_STREAM": "junk"})


def test_the_command_line_level_wins_over_the_settings() -> None:
    root = logging.getLogger()
    level = root.level
    try:
        logsetup.setup("warning", stream=io.StringIO(), env={}, force=True)
        logsetup.apply("text", "debug")
        assert root.level == logging.WARNING
        logsetup.setup(None, stream=io.StringIO(), env={}, force=True)
        assert root.level == logging.INFO
        logsetup.apply("text", "debug")
        assert root.level == logging.DEBUG
    finally:
        logsetup.teardown()
        root.setLevel(level)


def test_setup_leaves_a_host_programs_handlers_alone() -> None:
    assert logging.getLogger().handlers  # pytest's
    assert logsetup.setup("info", stream=io.StringIO(), env={}) is None


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (b"abc-123", "abc-123"),
        (b"A" * 128, "A" * 128),
        (b"A" * 129, None),
        (b"", None),
        (b"has space", None),
        (b"line\nbreak", None),
        (b"tab\there", None),
        (b"\x1b[31mred", None),
        ("caf\u00e9".encode(), None),
        (None, None),
    ],
)
def test_an_incoming_request_id_is_checked(raw: bytes | None, kept: str | None) -> None:
    assert reqid.valid(raw) == kept


def test_made_ids_are_a_process_prefix_and_a_counter() -> None:
    first, second = reqid.new_id(), reqid.new_id()
    prefix, _, number = first.partition("-")
    assert len(prefix) == 6 and second.startswith(prefix + "-")
    assert int(second.partition("-")[2], 16) == int(number, 16) + 1


CHAIN = '[chains.a]\nchain_id = 1\nproviders = [ { id = "p", url = "http://p.invalid" } ]\n'


def test_the_logging_table_and_its_defaults() -> None:
    assert parse_settings(CHAIN, env={}).logging == LoggingConfig(
        format="text", level=None, access_log=False
    )
    table = '[logging]\nformat = "json"\nlevel = "debug"\naccess_log = true\n'
    assert parse_settings(table + CHAIN, env={}).logging == LoggingConfig(
        format="json", level="debug", access_log=True
    )


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('format = "xml"', 'logging.format: must be one of "json", "text"; got "xml"'),
        ('level = "loud"', "logging.level"),
        ('access_log = "yes"', "logging.access_log"),
        ("colour = true", "colour"),
    ],
)
def test_a_bad_logging_key_is_named(table: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(f"[logging]\n{table}\n" + CHAIN, env={})
    assert problem in str(info.value)
