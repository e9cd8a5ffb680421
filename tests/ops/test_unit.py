"""deploy/lasso.service: the unit declares what the daemon implements (Type=notify, a
watchdog, reload by SIGHUP), systemd's own tools accept it and rate its sandbox 2.0 or
better, and the sandbox leaves the daemon what it needs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "lasso.service"
#: What the unit runs, as deploy/lasso.service installs it.
LASSO = "/opt/lasso/.venv/bin/lasso"
#: The exposure ceiling the issue sets (systemd-analyze security: 0.0 best, 10.0 worst).
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt install systemd)"
)


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value, in order (units repeat keys: ExecReload=...)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        sections[section][key.strip()].append(value.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return directives(UNIT.read_text())["Service"]


def test_the_unit_declares_notify_watchdog_and_reload(service: dict[str, list[str]]) -> None:
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]  # only lasso itself, never a child
    (watchdog,) = service["WatchdogSec"]
    assert re.fullmatch(r"[1-9][0-9]*s", watchdog), watchdog
    assert service["ExecReload"] == [
        f"{LASSO} check-config /etc/lasso/settings.toml",  # a bad file fails the reload
        "/bin/kill -HUP $MAINPID",
    ]
    assert service["ExecStart"] == [f"{LASSO} serve --config /etc/lasso/settings.toml"]
    assert service["KillSignal"] == ["SIGTERM"]  # lasso drains on SIGTERM


def test_the_sandbox_leaves_the_daemon_what_it_needs(service: dict[str, list[str]]) -> None:
    # Outbound TCP to providers, its own port, DNS, and AF_UNIX for $NOTIFY_SOCKET.
    (families,) = service["RestrictAddressFamilies"]
    assert set(families.split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "IPAddressDeny" not in service  # providers can be anywhere
    assert "PrivateNetwork" not in service
    # The open-file limit lasso raises its soft limit to (lasso.daemon.raise_open_file_limit).
    assert service["LimitNOFILE"] == ["65536"]
    # prometheus-client's process metrics read /proc/stat (the boot time).
    assert "ProcSubset" not in service
    # An unprivileged user, no capabilities granted (a port < 1024 is documented instead).
    assert service["User"] == ["lasso"]
    assert service["CapabilityBoundingSet"] == [""]
    assert service["AmbientCapabilities"] == [""]
    assert service["ReadOnlyPaths"] == ["/etc/lasso"]


@needs_analyze
def test_the_system_call_filter_allows_what_lasso_calls(service: dict[str, list[str]]) -> None:
    """The effective allow list (the sets, minus the denied ones) still has prlimit64 (glibc's
    setrlimit: the open-file limit), the socket calls and the event loop's epoll."""
    allowed = allowed_syscalls(service)
    needed = {
        "prlimit64",
        "socket",
        "bind",
        "listen",
        "accept4",
        "connect",
        "sendto",
        "sendmsg",
        "recvfrom",
        "epoll_wait",
        "epoll_ctl",
        "eventfd2",
        "getrandom",
        "clone3",
        "futex",
        "mmap",
        "mprotect",
    }
    assert needed - allowed == set()
    assert {"setuid", "mount", "reboot", "settimeofday", "init_module"} & allowed == set()


def allowed_syscalls(service: dict[str, list[str]]) -> set[str]:
    """The system calls the unit's SystemCallFilter= lines allow, in order: an allow list
    (plus @default, which systemd always adds), then the ``~`` lines taken out."""
    allowed = _syscalls(["@default"])
    for entry in service["SystemCallFilter"]:
        names = _syscalls(entry.removeprefix("~").split())
        allowed = allowed - names if entry.startswith("~") else allowed | names
    return allowed


def _syscalls(names: list[str]) -> set[str]:
    groups = _groups()
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            out |= _syscalls(groups[name])
        else:
            out.add(name)
    return out


@cache
def _groups() -> dict[str, list[str]]:
    assert ANALYZE is not None
    listing = subprocess.run(
        [ANALYZE, "syscall-filter"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in listing.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#") and line.startswith(" "):
            current.append(line.strip())
    return groups


@needs_analyze
def test_systemd_analyze_rates_the_unit_2_or_better() -> None:
    assert ANALYZE is not None
    done = subprocess.run(
        [
            ANALYZE,
            "security",
            "--offline=yes",
            f"--threshold={round(MAX_EXPOSURE * 10)}",  # exit non-zero above 2.0
            "--no-pager",
            str(UNIT),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    exposure = float(found.group(1))
    assert exposure <= MAX_EXPOSURE, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """``verify`` checks every key and value; it also wants the ExecStart binary to exist,
    so the copy runs this checkout's ``lasso`` script (or /bin/true) in its place."""
    assert ANALYZE is not None
    script = Path(sys.prefix) / "bin" / "lasso"
    stand_in = str(script) if script.exists() else "/bin/true"
    copy = tmp_path / "lasso.service"
    copy.write_text(UNIT.read_text().replace(LASSO, stand_in))
    done = subprocess.run(
        [ANALYZE, "verify", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "")


def test_directives_keeps_every_value() -> None:
    unit = directives("[Service]\n# c\nA=1\nA=2\n\nB=\n[Install]\nC = x y\n")
    assert unit["Service"] == {"A": ["1", "2"], "B": [""]}
    assert unit["Install"] == {"C": ["x y"]}
