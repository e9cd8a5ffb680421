"""``lasso``: the command line.

lasso serve [--config PATH] [--host H] [--port P]
lasso check-config PATH
lasso devnet [--nodes 3] [--block-time 1] [--port-base 8545]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from lasso.config import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def _default_config() -> str:
    return os.environ.get("LASSO_CONFIG", "settings.toml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lasso", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default=os.environ.get("LASSO_LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config", default=None, help="settings file (default: $LASSO_CONFIG or ./settings.toml)"
    )
    serve.add_argument("--host", default=None, help="listen address (default: server.host)")
    serve.add_argument(
        "--port", type=int, default=None, help="listen port (default: server.port, 4000)"
    )

    up = commands.add_parser("up", help="run the lockstep devnet and the gateway together")
    up.add_argument(
        "--config", default=None, help="settings file (default: $LASSO_CONFIG or ./settings.toml)"
    )
    up.add_argument("--host", default=None)
    up.add_argument("--port", type=int, default=None)
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--block-time", type=float, default=1.0)
    up.add_argument("--port-base", type=int, default=8545)

    check = commands.add_parser("check-config", help="validate a settings file")
    check.add_argument("path")

    devnet = commands.add_parser("devnet", help="run N lockstep anvil nodes")
    devnet.add_argument("--nodes", type=int, default=3)
    devnet.add_argument("--block-time", type=float, default=1.0)
    devnet.add_argument("--port-base", type=int, default=8545)
    return parser


def _load(path: str) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return None


def _run_devnet_command(run: Callable[[], Awaitable[None]]) -> int:
    """Run a command that starts the devnet; its failures are one clear line, not a trace."""
    from lasso.devnet import DevnetError

    try:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(run)
    except DevnetError as exc:
        print(f"lasso: the devnet could not start: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "check-config":
        settings = _load(args.path)
        if settings is None:
            return EXIT_CONFIG
        chains = sum(len(p.chains) for p in settings.profiles.values())
        print(f"{args.path}: ok ({len(settings.profiles)} profiles, {chains} chains)")
        return 0
    if args.command == "serve":
        settings = _load(args.config or _default_config())
        if settings is None:
            return EXIT_CONFIG
        from lasso.daemon import run_until_signalled

        trio.run(partial(run_until_signalled, settings, host=args.host, port=args.port))
        return 0
    if args.command == "up":
        settings = _load(args.config or _default_config())
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
        )
        return _run_devnet_command(run)
    if args.command == "devnet":
        from lasso.devnet import run_devnet_cli

        return _run_devnet_command(
            partial(run_devnet_cli, args.nodes, args.block_time, args.port_base)
        )
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
