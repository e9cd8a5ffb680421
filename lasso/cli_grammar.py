"""The ``lasso`` command line's grammar: the argparse parser of every command, with its help.

:mod:`lasso.cli` runs what it parses.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

import lasso

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
    "(default: $LASSO_LOG_LEVEL, else the settings' [logging] level, else info); "
    "accepted before or after the command"
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


def default_config() -> str:
    return os.environ.get("LASSO_CONFIG", "settings.toml")


def _workers(text: str) -> int | str:
    """``--workers``: a count of at least 1, or ``auto``."""
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of at least 1, or 'auto'")
    return count


def build_parser() -> argparse.ArgumentParser:
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
        # None when neither is given: then [logging] level applies, else info.
        default=os.environ.get("LASSO_LOG_LEVEL") or None,
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
    serve.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="worker processes sharing the port, or 'auto' (one per core); "
        "default: server.workers, 1",
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
