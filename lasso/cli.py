"""The ``lasso`` command line.

lasso serve [--config PATH] [--host H] [--port P] [--workers N|auto] [--pid-file PATH]
lasso reload [--pid-file PATH | --pid N]
lasso check-config PATH
lasso devnet [--nodes 3] [--block-time 1] [--port-base 8545] [--prune-history N [--pruned-node I]]
lasso up [--config PATH] [... lasso devnet's options]
lasso probe CHAIN [--config PATH] [--profile SLUG] [--write]
lasso battle [--config PATH --chain NAME] [--seed N] [--quick] [...]  (from a checkout)

Every command takes ``--log-level`` before or after its name; ``lasso --version``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from lasso import logsetup, redact
from lasso.cli_grammar import LOG_LEVELS, build_parser, default_config
from lasso.config import ConfigError, Settings, load_settings

EXIT_CONFIG = 2
#: ``lasso battle``: the harness or its extra dependencies are not installed.
EXIT_NO_BATTLE = 2
#: The harness's install hint: it is not in the production package (``pip install .``).
BATTLE_HINT = (
    "it runs from a Lasso source checkout: `make install` there (pip install -e '.[dev]', "
    "which brings the [battle] extra), then `make battle` or `.venv/bin/python -m lasso battle`"
)
#: ``lasso reload``: the process could not be signalled (none, not lasso, not permitted).
EXIT_NOT_SIGNALLED = 1
#: ``lasso reload``: no usable pid (bad pid file, none given).
EXIT_NO_PID = 2


def _prune_history(args: argparse.Namespace) -> dict[int, int] | None:
    """``{node index: states kept}`` from ``--prune-history`` / ``--pruned-node``."""
    if args.prune_history is None:
        return None
    index = args.nodes - 1 if args.pruned_node is None else args.pruned_node
    return {index: args.prune_history}


def _worker_count(settings: Settings, flag: int | str | None) -> int:
    """``--workers`` (wins) or ``server.workers``; ``auto``: one per core."""
    if flag is None:
        return settings.server.worker_count(os.cpu_count())
    if flag == "auto":
        return max(1, os.cpu_count() or 1)
    return int(flag)


def _reload(pid: int | None, pid_file: str | None) -> int:
    """``lasso reload``: one line on success or failure."""
    from lasso.pidfile import PidError, read_pid_file, signal_reload

    if pid is None and pid_file is None:
        print(
            "lasso reload: give --pid N or --pid-file PATH (or set LASSO_PID_FILE)", file=sys.stderr
        )
        return EXIT_NO_PID
    try:
        target = pid if pid is not None else read_pid_file(str(pid_file))
    except PidError as exc:
        print(f"lasso reload: {exc}", file=sys.stderr)
        return EXIT_NO_PID
    try:
        signal_reload(target)
    except PidError as exc:
        print(f"lasso reload: {exc}", file=sys.stderr)
        return EXIT_NOT_SIGNALLED
    print(f"lasso reload: sent SIGHUP to pid {target}; the outcome is in its log and /health")
    return 0


def _with_pid_file(path: str | None, run: Callable[[], int]) -> int:
    """Run ``run`` holding the pid file at ``path`` (if any)."""
    from lasso.pidfile import PidError, write_pid_file

    try:
        with write_pid_file(path):
            return run()
    except PidError as exc:
        print(f"lasso: {exc}", file=sys.stderr)
        return 1


def _load(path: str) -> Settings | None:
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return None
    redact.update(settings)
    return settings


def _run_foreground(run: Callable[[], Awaitable[None]]) -> int:
    """Run a command that starts the devnet or listens (devnet, up, serve); a start-up
    failure (a busy port, no anvil) is one clear line, not a nursery's trace."""
    from lasso.devnet import DevnetError
    from lasso.web.server import ListenError

    try:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(run)
    except (DevnetError, ListenError, BaseExceptionGroup) as raised:
        exc = _sole(raised)
        if isinstance(exc, ListenError):
            print(f"lasso: {exc}", file=sys.stderr)
        elif isinstance(exc, DevnetError):
            print(f"lasso: the devnet could not start: {exc}", file=sys.stderr)
        else:
            raise
        return 1
    return 0


def _sole(exc: BaseException) -> BaseException:
    """The one exception inside nested groups of one (trio's nurseries wrap each error)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _battle(argv: list[str]) -> int:
    """``lasso battle``: the harness's own command line, if the harness is installed here."""
    # An editable install (make install) maps only the lasso package; the harness sits
    # beside it in the checkout, so `.venv/bin/lasso battle` looks there too. In a
    # production install the parent is site-packages, which has no battle package.
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "battle" / "__init__.py").is_file() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))
    try:
        from battle.run import main as battle_main
        from battle.run import missing_dependencies
    except ModuleNotFoundError as exc:
        print(
            f"lasso battle: the battle harness is not installed ({exc}); {BATTLE_HINT}",
            file=sys.stderr,
        )
        return EXIT_NO_BATTLE
    missing = missing_dependencies()
    if missing:
        names = ", ".join(missing)
        print(
            f"lasso battle: the battle harness needs {names}, not installed; {BATTLE_HINT}",
            file=sys.stderr,
        )
        return EXIT_NO_BATTLE
    return battle_main(argv, prog="lasso battle")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "battle":
        return _battle(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in ("up", "devnet") and args.prune_history is not None:
        index = args.pruned_node
        if index is not None and not 0 <= index < args.nodes:
            parser.error(f"--pruned-node {index}: nodes are 0..{args.nodes - 1}")
    level = None if args.log_level is None else str(args.log_level).lower()
    if level is not None and level not in LOG_LEVELS:
        print(
            f"lasso: --log-level {args.log_level}: not a level; use one of {', '.join(LOG_LEVELS)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    # Text lines at --log-level (given) or info; serve and up then apply [logging]
    # (lasso.logsetup: its format, and its level unless --log-level was given).
    logsetup.setup(level)
    redact.install()  # secrets masked in every log line (lasso.redact); _load adds the config's
    if args.command == "check-config":
        settings = _load(args.path)
        if settings is None:
            return EXIT_CONFIG
        chains = sum(len(p.chains) for p in settings.profiles.values())
        print(f"{args.path}: ok ({len(settings.profiles)} profiles, {chains} chains)")
        return 0
    if args.command == "reload":
        return _reload(args.pid, args.pid_file)
    if args.command == "serve":
        path = args.config or default_config()
        settings = _load(path)
        if settings is None:
            return EXIT_CONFIG
        logsetup.apply(settings.logging.format, settings.logging.level)  # [logging]
        from lasso.daemon import run_until_signalled

        serve = partial(
            run_until_signalled, settings, host=args.host, port=args.port, config_path=path
        )
        workers = _worker_count(settings, args.workers)
        if workers > 1:  # a parent supervising N gateway processes (lasso.workers)
            from lasso.workers.supervisor import run_workers

            serve = partial(
                run_workers,
                settings,
                workers,
                host=args.host,
                port=args.port,
                config_path=path,
                log_level=level,
            )
        return _with_pid_file(args.pid_file, lambda: _run_foreground(serve))
    if args.command == "up":
        path = args.config or default_config()
        settings = _load(path)
        if settings is None:
            return EXIT_CONFIG
        logsetup.apply(settings.logging.format, settings.logging.level)  # [logging]
        from lasso.daemon import run_with_devnet
        from lasso.devnet.follow import DevnetMismatch, check_devnet_fits

        try:  # the devnet chain must name only nodes that will run (lasso.devnet.follow)
            check_devnet_fits(settings, args.nodes)
        except DevnetMismatch as exc:
            print(f"lasso: {path}: {exc}", file=sys.stderr)
            return EXIT_CONFIG

        run = partial(
            run_with_devnet,
            settings,
            host=args.host,
            port=args.port,
            nodes=args.nodes,
            block_time_s=args.block_time,
            port_base=args.port_base,
            prune_history=_prune_history(args),
            config_path=path,
        )
        return _with_pid_file(args.pid_file, lambda: _run_foreground(run))
    if args.command == "devnet":
        from lasso.devnet import run_devnet_cli

        return _run_foreground(
            partial(
                run_devnet_cli,
                args.nodes,
                args.block_time,
                args.port_base,
                prune_history=_prune_history(args),
            )
        )
    if args.command == "probe":
        from lasso.probe import ProbeOptions, run_probe_cli

        options = ProbeOptions(call_timeout_s=args.timeout, logs_bound=args.logs_bound)
        path = args.config or default_config()
        return run_probe_cli(path, args.chain, args.profile, write=args.write, options=options)
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
