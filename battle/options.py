"""The battle's command line: :class:`Options`, parsed from argv and the environment.

``python -m battle``, ``lasso battle`` and ``make battle`` share this parser. The target and
chain come from the options, then ``BATTLE_TARGET`` / ``BATTLE_CHAIN``, then the defaults
(``--config`` alone means the ``config`` target). :meth:`Options.command` is the one command
that runs the same battle again: every choice spelled out, so it does not depend on the
environment it is pasted into.
"""

from __future__ import annotations

import argparse
import random
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

Target = Literal["devnet", "public", "config"]
TARGETS: tuple[Target, ...] = ("devnet", "public", "config")
DEFAULT_CHAIN: dict[str, str] = {"devnet": "devnet", "public": "ethereum"}

#: Fuzz examples by default, full and quick, sized to fit the phase's budget below.
FUZZ_EXAMPLES = {False: 1000, True: 300}
#: The fuzz phase's time budget in seconds (examples are sized to fit it; it is bounded at 3x).
FUZZ_BUDGET_S = {False: 60.0, True: 25.0}
#: Steps of the stateful machine after the differential fuzzing.
STATEFUL_STEPS = {False: 60, True: 20}

#: Where reports go by default: battle/reports/<UTC timestamp>/.
REPORTS = Path(__file__).resolve().parent / "reports"

EPILOG = """\
targets:
  devnet   4 real anvil nodes (0-2 full, 3 pruned), block time 1 s, seeded chain data (default)
  public   the chain's public providers in settings.toml (skips cleanly when offline)
  config   your own settings file: --config PATH --chain NAME

environment: BATTLE_TARGET, BATTLE_CHAIN give the target and chain when no option does.

exit status: 0 every SLO met (or the target is unreachable: one line says why);
             1 an SLO breach or a fuzz failure; 2 bad usage
"""


@dataclass(frozen=True)
class Options:
    target: Target
    chain: str
    config: Path | None
    seed: int
    quick: bool = False
    scenarios: tuple[str, ...] = ()  # a subset by name; () runs the default set
    break_failover: bool = False
    fuzz: bool = True
    out: Path | None = None  # None: REPORTS/<UTC timestamp>
    fuzz_examples: int | None = None  # None: FUZZ_EXAMPLES[quick]

    @property
    def examples(self) -> int:
        return FUZZ_EXAMPLES[self.quick] if self.fuzz_examples is None else self.fuzz_examples

    @property
    def fuzz_budget_s(self) -> float:
        return FUZZ_BUDGET_S[self.quick]

    @property
    def stateful_steps(self) -> int:
        return STATEFUL_STEPS[self.quick]

    def out_dir(self, now: datetime | None = None) -> Path:
        if self.out is not None:
            return self.out
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        return REPORTS / stamp

    def command(self) -> str:
        """The command that runs this battle again (same target, chain, seed and choices)."""
        words = ["python", "-m", "battle", "--target", self.target, "--chain", self.chain]
        if self.config is not None:
            words += ["--config", str(self.config)]
        words += ["--seed", str(self.seed)]
        if self.quick:
            words.append("--quick")
        for name in self.scenarios:
            words += ["--scenario", name]
        if self.break_failover:
            words.append("--break-failover")
        if not self.fuzz:
            words.append("--no-fuzz")
        if self.fuzz_examples is not None:
            words += ["--fuzz-examples", str(self.fuzz_examples)]
        return shlex.join(words)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


def parser(prog: str = "python -m battle") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Battle-test Lasso: differential fuzzing and chaos scenarios against real "
        "providers, judged by SLOs measured from what happened.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--target", choices=TARGETS, default=None, help="default: $BATTLE_TARGET")
    p.add_argument(
        "--chain", default=None, help="default: $BATTLE_CHAIN, else devnet / ethereum by target"
    )
    p.add_argument("--config", type=Path, default=None, help="settings file (the config target)")
    p.add_argument("--seed", type=_count, default=None, help="default: random (printed first)")
    p.add_argument("--quick", action="store_true", help="the quick subset (< 3 min)")
    p.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario (repeatable)",
    )
    p.add_argument(
        "--break-failover",
        action="store_true",
        help="run a deliberately broken gateway (failover off): the battle must fail",
    )
    p.add_argument("--no-fuzz", action="store_true", help="skip the fuzz and stateful phase")
    p.add_argument("--out", type=Path, default=None, help="report directory")
    p.add_argument("--fuzz-examples", type=_count, default=None, metavar="N")
    return p


def parse_options(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    prog: str = "python -m battle",
    rng: random.Random | None = None,
) -> Options:
    """Options from ``argv`` and ``environ``; bad usage exits 2 with argparse's message."""
    p = parser(prog)
    args = p.parse_args(list(argv))
    target = args.target or ("config" if args.config else environ.get("BATTLE_TARGET", "devnet"))
    if target not in TARGETS:
        p.error(f"BATTLE_TARGET={target!r}: choose from {', '.join(TARGETS)}")
    if target == "config" and args.config is None:
        p.error("the config target needs --config PATH")
    chain = args.chain or environ.get("BATTLE_CHAIN") or DEFAULT_CHAIN.get(target)
    if not chain:
        p.error("the config target needs --chain NAME (or BATTLE_CHAIN)")
    seed = args.seed if args.seed is not None else (rng or random.SystemRandom()).randrange(2**32)
    return Options(
        target=cast(Target, target),
        chain=chain,
        config=args.config,
        seed=seed,
        quick=args.quick,
        scenarios=tuple(args.scenario),
        break_failover=args.break_failover,
        fuzz=not args.no_fuzz,
        out=args.out,
        fuzz_examples=args.fuzz_examples,
    )
