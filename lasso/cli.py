"""The ``lasso`` command line.

lasso serve [--config PATH] [--host H] [--port P] [--pid-file PATH]
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
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

import lasso
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

DESCRIPTION = (
    "Lasso: one fast, resilient Ethereum JSON-RPC endpoint in front of many providers. "
    "Run `lasso COMMAND --help` for a command's options."
)
EPILOG = """\
environment:
  LASSO_CONFIG     settings file of serve, up, probe (default ./settings.toml)
  LASSO_LOG_LEVEL  default for --log-level (default info)
  LASSO_PID_FILE   default for lasso reload --pid-file
"""
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_LEVEL_HELP = (
    "log verbosity: debug, info, warning, error or critical "
    "(default: $LASSO_LOG_LEVEL or info); accepted before or after the command"
)

SIGNALS_HELP = """\
signals:
  SIGHUP           reload the settings file (systemctl reload lasso, lasso reload,
                   kill -HUP): it is checked as check-config checks it; a bad file is
                   logged problem by problem and ignored, the gateway keeps serving on
                   the last good one. Providers, chains and profiles are added and
                   removed, thresholds apply live; server.host, server.port and the
                   other restart-only keys are logged as needing a restart. /health
                   shows the config generation and the last reload's outcome.
  SIGINT, SIGTERM  stop accepting, give in-flight requests server.shutdown_grace_ms,
                   then exit
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps one-paragraph descriptions and epilogs to the terminal; keeps laid-out
    (multi-line) text such as the signals table as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def _default_config() -> str:
    return os.environ.get("LASSO_CONFIG", "settings.toml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lasso",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"lasso {lasso.__version__}",
        help="print lasso's version and exit",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LASSO_LOG_LEVEL", "info"),
        metavar="LEVEL",
        help=LOG_LEVEL_HELP,
    )
    # The same option after the command; SUPPRESS keeps the one given before it
    # (or the default) when it is not repeated there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, metavar="LEVEL", help=LOG_LEVEL_HELP
    )
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        title="commands",
        help="one of these (lasso COMMAND --help for its options):",
    )
    add = partial(commands.add_parser, parents=[common], formatter_class=_Formatter)

    serve = add(
        "serve",
        help="run the gateway",
        description="Run the gateway until SIGINT or SIGTERM; SIGHUP reloads the settings.",
        epilog=SIGNALS_HELP,
    )
    serve.add_argument(
        "--config", default=None, help="settings file (default: $LASSO_CONFIG or ./settings.toml)"
    )
    serve.add_argument("--host", default=None, help="listen address (default: server.host)")
    serve.add_argument(
        "--port", type=int, default=None, help="listen port (default: server.port, 4000)"
    )
    _pid_file_option(serve)

    up = add(
        "up",
        help="run the lockstep devnet and the gateway together",
        description=(
            "Start the lockstep devnet of anvil nodes, then the gateway (as lasso serve) "
            "in front of it, until SIGINT or SIGTERM; SIGHUP reloads the gateway's "
            "settings and keeps the devnet running. What make run runs."
        ),
        epilog=SIGNALS_HELP,
    )
    up.add_argument(
        "--config", default=None, help="settings file (default: $LASSO_CONFIG or ./settings.toml)"
    )
    up.add_argument("--host", default=None, help="gateway listen address (default: server.host)")
    up.add_argument(
        "--port", type=int, default=None, help="gateway listen port (default: server.port, 4000)"
    )
    _pid_file_option(up)
    _devnet_options(up)

    reload = add(
        "reload",
        help="make a running lasso serve reload its settings file (sends SIGHUP)",
        description=(
            "Send SIGHUP to a running lasso serve, which re-reads its settings file. "
            "Check the file first with lasso check-config; the outcome is in the "
            "daemon's log and in /health."
        ),
        epilog=(
            "exit status: 0 signal sent; 1 no such process, not a lasso process, or not "
            "permitted; 2 no usable pid (bad or missing pid file, none given)"
        ),
    )
    which = reload.add_mutually_exclusive_group()
    which.add_argument(
        "--pid-file",
        default=os.environ.get("LASSO_PID_FILE"),
        help="the pid file lasso serve --pid-file wrote (default: $LASSO_PID_FILE)",
    )
    which.add_argument("--pid", type=_process_id, default=None, help="the daemon's process id")

    check = add(
        "check-config",
        help="validate a settings file",
        description=(
            "Validate a settings file: every problem is listed with its path "
            "(e.g. chains.devnet.providers[0].url)."
        ),
        epilog="exit status: 0 valid; 2 not readable or not valid",
    )
    check.add_argument("path", help="the settings file (TOML)")

    devnet = add(
        "devnet",
        help="run N lockstep anvil nodes",
        description=(
            "Run N real anvil nodes of one chain, mined in lockstep (identical blocks and "
            "hashes, like N providers of one chain), until SIGINT, SIGTERM or SIGHUP."
        ),
    )
    _devnet_options(devnet)

    probe = add(
        "probe",
        help="measure each provider of a chain: methods, archival depth, limits",
        description=(
            "Probe every provider of CHAIN directly (not through routing), all at once: "
            "about 40 common methods, the earliest block whose state it serves, its "
            "eth_getLogs block-range limit, batch and eth_subscribe support. Prints a "
            "table; with --write, the table goes to stderr and a TOML snippet of the "
            "measured capability keys to stdout, to merge into settings.toml."
        ),
        epilog=(
            "exit status: 0 probed; 1 no provider answered; 2 bad settings file, or no "
            "such profile or chain"
        ),
    )
    probe.add_argument("chain", help="chain name, alias or decimal chain id")
    probe.add_argument(
        "--config", default=None, help="settings file (default: $LASSO_CONFIG or ./settings.toml)"
    )
    probe.add_argument("--profile", default="default", help="profile slug (default: default)")
    probe.add_argument(
        "--write", action="store_true", help="print the capabilities TOML snippet on stdout"
    )
    probe.add_argument(
        "--timeout", type=_positive_float, default=5.0, help="seconds per call (default 5)"
    )
    probe.add_argument(
        "--logs-bound",
        type=_process_id,
        default=100_000,
        help="widest eth_getLogs range tried, in blocks (default 100000)",
    )
    commands.add_parser(
        "battle",
        add_help=False,  # its own options and --help are the harness's (python -m battle)
        help="battle-test Lasso and your providers: fuzzing, chaos, SLOs (from a checkout; "
        "lasso battle --help)",
    )
    return parser


def _devnet_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--nodes", type=int, default=3, metavar="N", help="devnet anvil nodes (default 3)"
    )
    command.add_argument(
        "--block-time",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="a block every SECONDS (default 1)",
    )
    command.add_argument(
        "--port-base",
        type=int,
        default=8545,
        metavar="PORT",
        help="node i listens on PORT + i (default 8545; 0 picks free ports)",
    )
    command.add_argument(
        "--prune-history",
        type=_process_id,
        default=None,
        metavar="N",
        help="run one node pruned: it keeps the state of only its last N blocks "
        "(anvil --prune-history=N), like a non-archive provider",
    )
    command.add_argument(
        "--pruned-node",
        type=int,
        default=None,
        metavar="I",
        help="which node --prune-history prunes (0-based; default: the last one)",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _prune_history(args: argparse.Namespace) -> dict[int, int] | None:
    """``{node index: states kept}`` from ``--prune-history`` / ``--pruned-node``."""
    if args.prune_history is None:
        return None
    index = args.nodes - 1 if args.pruned_node is None else args.pruned_node
    return {index: args.prune_history}


def _pid_file_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--pid-file",
        default=None,
        help="write the process id here while running (for lasso reload --pid-file)",
    )


def _process_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return int(text)


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
        return load_settings(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return None


def _run_foreground(run: Callable[[], Awaitable[None]]) -> int:
    """Run a command that starts the devnet or listens (devnet, up, serve); a start-up
    failure (a busy port, no anvil) is one clear line, not a nursery's trace."""
    from lasso.daemon import ListenError
    from lasso.devnet import DevnetError

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
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "battle":
        return _battle(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in ("up", "devnet") and args.prune_history is not None:
        index = args.pruned_node
        if index is not None and not 0 <= index < args.nodes:
            parser.error(f"--pruned-node {index}: nodes are 0..{args.nodes - 1}")
    level = str(args.log_level).lower()
    if level not in LOG_LEVELS:
        print(
            f"lasso: --log-level {args.log_level}: not a level; use one of {', '.join(LOG_LEVELS)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
        path = args.config or _default_config()
        settings = _load(path)
        if settings is None:
            return EXIT_CONFIG
        from lasso.daemon import run_until_signalled

        serve = partial(
            run_until_signalled, settings, host=args.host, port=args.port, config_path=path
        )
        return _with_pid_file(args.pid_file, lambda: _run_foreground(serve))
    if args.command == "up":
        path = args.config or _default_config()
        settings = _load(path)
        if settings is None:
            return EXIT_CONFIG
        from lasso.daemon import run_with_devnet

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
        path = args.config or _default_config()
        return run_probe_cli(path, args.chain, args.profile, write=args.write, options=options)
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
