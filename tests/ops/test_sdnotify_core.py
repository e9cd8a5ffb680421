"""The pure side of sd_notify (lasso.core.sdnotify): addresses, the watchdog period, the
datagram, the request rate and the status text."""

from __future__ import annotations

import pytest

from lasso.core.sdnotify import (
    RequestRate,
    encode,
    notify_address,
    status_text,
    watchdog_period_s,
)


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@lasso/notify", "\0lasso/notify"),
        (None, None),
        ("", None),
        ("@", None),
        ("relative/path", None),
        ("vsock:2:1234", None),
    ],
)
def test_notify_address(value: str | None, address: str | None) -> None:
    assert notify_address(value) == address


@pytest.mark.parametrize(
    ("environ", "period_s"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": " 4242 "}, 0.1),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # inherited
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
        ({}, None),
    ],
)
def test_watchdog_period_is_half_of_watchdog_usec_for_this_process(
    environ: dict[str, str], period_s: float | None
) -> None:
    assert watchdog_period_s(environ, 4242) == period_s


def test_a_datagram_is_one_assignment_per_line() -> None:
    assert encode(("READY", "1"), ("STATUS", "serving")) == b"READY=1\nSTATUS=serving"
    # A newline in a value would smuggle in another assignment (READY=1 from a status).
    assert encode(("STATUS", "a\nREADY=1")) == b"STATUS=a READY=1"


def test_the_rate_counts_calls_over_each_interval() -> None:
    rate = RequestRate(started=100.0)
    for _ in range(50):
        rate.add()
    assert rate.per_second(105.0) == 10.0
    assert rate.per_second(110.0) == 0.0  # nothing since the last reading
    rate.add(3)
    assert rate.per_second(112.0) == 1.5
    rate.add()
    assert rate.per_second(112.0) == 0.0  # no time passed: no rate, and no division by zero


def test_status_text() -> None:
    assert status_text(3, 4, 12.345) == "serving: 3/4 provider channels up, 12.3 req/s"
    assert status_text(0, 0, 0.0) == "serving: 0/0 provider channels up, 0.0 req/s"
