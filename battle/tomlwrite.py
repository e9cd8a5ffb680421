"""A small TOML writer for the subset Lasso's settings use, so the harness can rewrite a config.

``dumps(tree)`` writes what :mod:`tomllib` parsed back to text that parses to an equal tree:
tables and sub-tables (``[a.b]``), arrays of tables (``[[a.b]]``), strings, ints, floats,
bools, arrays and inline tables (a table inside an array that is not all tables). Scalar
keys of a table come before its sub-tables, as TOML requires. Keys that are not bare are
quoted. Dates and times are not part of Lasso's schema and raise ``TypeError``.
Comments are not kept: the harness writes a file the gateway runs, not one an operator edits.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(tree: Mapping[str, Any], *, header: str = "") -> str:
    """``tree`` as TOML text; ``header`` lines go first as comments."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    _table(tree, (), lines)
    return "\n".join(lines).strip("\n") + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _path(path: tuple[str, ...]) -> str:
    return ".".join(_key(k) for k in path)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    for key, value in table.items():
        if not isinstance(value, Mapping) and not _is_table_array(value):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        sub = (*path, key)
        if isinstance(value, Mapping):
            scalars = any(
                not isinstance(v, Mapping) and not _is_table_array(v) for v in value.values()
            )
            if scalars or not value:
                lines += ["", f"[{_path(sub)}]"]
            _table(value, sub, lines)
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{_path(sub)}]]"]
                _table(item, sub, lines)


def _string(text: str) -> str:
    # A JSON string is a TOML basic string, except for escapes TOML lacks: JSON's \/ is
    # never produced, and every control character comes out as \uXXXX, which TOML has.
    return json.dumps(text, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML: {value!r}")
