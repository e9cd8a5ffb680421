"""Configuration problems: where in the file, and what is wrong there.

A problem's path names the offending key the way an operator would find it in
the TOML file: dotted table keys, ``[i]`` for array items, and keys that are not
bare TOML keys quoted (``chains.devnet.providers[0].urll``,
``chains.devnet.providers[0].headers."x api"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

__all__ = ["ConfigError", "ConfigProblem", "Path", "quote", "render_path"]

# A path is the sequence of table keys and array indexes from the document root.
Path = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def render_path(path: Path) -> str:
    """Render ``("chains", "x", "providers", 0, "url")`` as ``chains.x.providers[0].url``."""
    out: list[str] = []
    for segment in path:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
            continue
        key = segment if _BARE_KEY.fullmatch(segment) else quote(segment)
        out.append(f".{key}" if out else key)
    return "".join(out)


def quote(text: str) -> str:
    """``text`` as a TOML basic string."""
    return '"' + "".join(_ESCAPES.get(c) or _escape(c) for c in text) + '"'


_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _escape(c: str) -> str:
    if c.isprintable():
        return c
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


class ConfigProblem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing wrong with a configuration file.

    ``path`` is empty for problems with the file as a whole (unreadable, not TOML).
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A configuration that cannot be used, with every problem found in it."""

    def __init__(self, problems: Sequence[ConfigProblem], *, source: str = "<string>") -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems: list[ConfigProblem] = list(problems)
        self.source = source
        super().__init__(self.problems)

    def render(self) -> str:
        """Every problem, one per line, as ``path: message``."""
        return "\n".join(str(problem) for problem in self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        return f"{self.source}: {count} configuration {noun}\n{self.render()}"
