"""``python -m battle [options]`` runs a battle; ``python -m battle replay FILE`` replays a saved
fuzz failure. See ``python -m battle --help`` and battle/README.md."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["replay"]:
        from battle.replay import main_replay as replay

        return replay(args[1:])
    from battle.run import main as run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
