"""``${VAR}`` substitution in string values.

Substitution runs on parsed TOML string values, never on the file text, so an
environment value cannot change the file's structure. ``$${`` is an escape for
a literal ``${``; any other ``$`` is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["substitute"]

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")


def substitute(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with every ``${VAR}`` replaced from ``env``, and what went wrong.

    The second item lists one message per unresolved or malformed reference; when
    it is not empty the returned text must not be used.
    """
    if "${" not in text:
        return text, []
    errors: list[str] = []

    def replace(match: re.Match[str]) -> str:
        whole, name = match.group(0), match.group(1)
        if whole == "$${":
            return "${"
        if name is None:
            errors.append("malformed ${...} reference (write $${ for a literal ${)")
            return whole
        if name not in env:
            errors.append(f"environment variable {name} is not set")
            return whole
        return env[name]

    return _REFERENCE.sub(replace, text), errors
