"""``lasso serve --workers N`` as a benchmark target, exactly as an operator runs it.

    python -m bench.workers_target UPSTREAM_URL N      (prints ``ready PORT``)

Writes a one-chain settings file (``bench``, one provider: the instant upstream),
starts ``python -m lasso serve --port 0 --workers N`` and prints ``ready PORT`` once it
listens (with N > 1, once every worker is ready). SIGTERM is passed on, and this
process exits when the gateway has drained.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.gateway_target import SETTINGS
from bench.procs import REPO, _die_with_parent


def main(upstream_url: str, workers: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(SETTINGS.format(url=upstream_url))
        argv = [sys.executable, "-m", "lasso", "serve", "--config", str(config)]
        argv += ["--port", "0", "--workers", str(workers), "--log-level", "warning"]
        proc = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent
        )
        signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        assert proc.stdout is not None
        for line in proc.stdout:
            if " listening on " in line:
                port = line.split(", ")[0].rsplit(":", 1)[1].strip()
                print(f"ready {port}", flush=True)
                break
        for _ in proc.stdout:  # the rest of the banner, until the gateway exits
            pass
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
