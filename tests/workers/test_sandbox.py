"""``lasso serve --workers 2`` inside deploy/lasso.service's sandbox (the unit's system call
allow list, socket families, W^X, no capabilities: tests/ops/sandbox_jail.py): the parent
binds, spawns and talks to its workers over AF_UNIX, the workers serve, and the group
drains, with nothing refused on the way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.test_sdnotify_daemon import Receiver
from tests.ops.test_unit_sandbox import _field, _jailed, _missing
from tests.workers.group import CONFIG, REPO, Group, instant_upstream

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


def test_a_worker_group_runs_inside_the_units_sandbox(tmp_path: Path) -> None:
    config = tmp_path / "lasso.toml"
    receiver = Receiver(tmp_path / "notify")
    stderr = tmp_path / "stderr"
    with instant_upstream() as upstream, receiver.sock, stderr.open("w") as errors:
        config.write_text(CONFIG.format(port=upstream))
        argv = ["python", "-m", "lasso", "serve", "--config", str(config), "--port", "0"]
        wrapper, spec = _jailed([sys.executable, *argv[1:], "--workers", "2"])
        env = dict(os.environ, JAIL_SPEC=spec, NOTIFY_SOCKET=receiver.address)
        serve = subprocess.Popen(
            wrapper, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            ready = receiver.until("READY=1", timeout_s=60)[-1]
            assert ready == "READY=1\nSTATUS=serving: 2/2 workers up"
            assert serve.stdout is not None
            port = next(
                int(line.split(", ")[0].rsplit(":", 1)[1])
                for line in serve.stdout
                if " listening on " in line
            )
            group = Group(serve, port, config)
            assert group.post()[0] == 200
            workers = group.health()["workers"]
            assert workers["up"] == 2
            for member in workers["members"]:
                assert _field(member["pid"], "Seccomp") == "2"  # the jail holds the workers too
            serve.send_signal(signal.SIGTERM)
            assert receiver.until("STOPPING=1")[-1].startswith("STOPPING=1")
            assert serve.wait(timeout=30) == 0
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait()
            if serve.stdout is not None:
                serve.stdout.close()
    log = stderr.read_text()
    for trouble in ("Traceback", "cannot notify", "ERROR", "Operation not", "exited;"):
        assert trouble not in log, log
