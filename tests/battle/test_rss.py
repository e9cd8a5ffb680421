"""The RSS sampler: parsing /proc/<pid>/status, sampling a live process, stopping when it is gone."""

from __future__ import annotations

import os

import trio
import trio.testing

from battle.events import Recorder
from battle.rss import parse_vmrss, read_rss, sample_rss

STATUS = """Name:\tpython
State:\tS (sleeping)
VmPeak:\t  300000 kB
VmRSS:\t   51234 kB
RssAnon:\t   40000 kB
"""


def test_vmrss_in_bytes() -> None:
    assert parse_vmrss(STATUS) == 51234 * 1024


def test_no_vmrss_line_is_none() -> None:
    zombie = "Name:\tpython\nState:\tZ (zombie)\n"
    assert parse_vmrss(zombie) is None
    assert parse_vmrss("") is None
    assert parse_vmrss("VmRSS:\t  lots kB\n") is None
    assert parse_vmrss("VmRSS:\t  1 parsecs\n") is None
    assert parse_vmrss("VmRSSx:\t  1 kB\n") is None


def test_our_own_process_is_read() -> None:
    rss = read_rss(os.getpid())
    assert rss is not None and rss > 1024 * 1024


async def test_sampling_a_gone_process_stops_quietly() -> None:
    recorder = Recorder()
    with trio.fail_after(5):
        await sample_rss(2**22 + 12345, recorder, duration_s=60)  # beyond pid_max: never alive
    assert recorder.recording().resources == ()


async def test_samples_come_every_interval_for_the_duration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    await sample_rss(os.getpid(), recorder, duration_s=1.0, every_s=0.25)
    samples = recorder.recording().resources
    assert [s.at for s in samples] == [0.0, 0.25, 0.5, 0.75]
    assert all(s.rss_bytes > 0 for s in samples)
