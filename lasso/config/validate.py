"""Checking a parsed TOML tree against the schema, reporting every problem.

msgspec stops at the first error, so this walks the tree alongside
``msgspec.inspect.type_info(SettingsFile)`` and records a ``ConfigProblem`` for
each unknown field, missing field, wrong type, out-of-range value, bad choice
and bad URL. It also performs ``${VAR}`` substitution on every string it meets
and returns the substituted tree, which ``msgspec.convert`` accepts exactly when
no problem was recorded.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec.inspect as mi

from lasso.config.env import substitute
from lasso.config.problems import ConfigProblem, Path, quote, render_path
from lasso.config.secrets import mask_url

__all__ = ["Walker", "toml_type_name"]

# msgspec decodes integers into 64-bit slots; TOML allows the same range.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_SHOW_CHARS = 60

_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (dict, "table"),
    (datetime.datetime, "datetime"),
    (datetime.date, "date"),
    (datetime.time, "time"),
)


def toml_type_name(value: object) -> str:
    """The TOML name of a parsed value's type (``table``, ``array``, ``integer``...)."""
    for cls, name in _NAMES:
        if isinstance(value, cls):
            return name
    return type(value).__name__


class Walker:
    """One validation pass; problems accumulate in ``self.problems``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[ConfigProblem] = []
        self._visit_order: dict[str, int] = {}
        self._checks: dict[type[mi.Type], Callable[[Any, Any, Path, Mapping[str, Any]], Any]] = {
            mi.StructType: self._struct,
            mi.DictType: self._dict,
            mi.ListType: self._array,
            mi.VarTupleType: self._array,
            mi.UnionType: self._union,
            mi.LiteralType: self._literal,
            mi.StrType: self._str,
            mi.IntType: self._int,
            mi.FloatType: self._float,
            mi.BoolType: self._bool,
        }

    def report(self, path: Path, message: str) -> None:
        rendered = render_path(path)
        self._visit_order.setdefault(rendered, len(self._visit_order))
        self.problems.append(ConfigProblem(path=rendered, message=message))

    def in_document_order(self) -> list[ConfigProblem]:
        """The problems sorted by where their path first appears in the file."""
        last = len(self._visit_order)
        return sorted(self.problems, key=lambda p: self._visit_order.get(p.path, last))

    def check(self, value: object, t: mi.Type, path: Path, extra: Mapping[str, Any] = {}) -> Any:
        """Record the problems with ``value`` against ``t``; return it substituted."""
        self._visit_order.setdefault(render_path(path), len(self._visit_order))
        if isinstance(t, mi.Metadata):
            return self.check(value, t.type, path, t.extra or {})
        try:
            check = self._checks[type(t)]
        except KeyError:
            raise TypeError(f"settings schema uses unsupported type {t!r}") from None
        return check(value, t, path, extra)

    def _wrong_type(self, path: Path, expected: str, value: object) -> None:
        self.report(path, f"expected {expected}, got {toml_type_name(value)}")

    def _struct(self, value: Any, t: mi.StructType, path: Path, extra: Mapping[str, Any]) -> Any:
        if not isinstance(value, dict):
            return self._wrong_type(path, "table", value)
        fields = {field.encode_name: field for field in t.fields}
        out: dict[str, Any] = {}
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                self.report((*path, key), "unknown field")
            else:
                out[key] = self.check(item, field.type, (*path, key))
        for field in t.fields:
            if field.required and field.encode_name not in value:
                self.report((*path, field.encode_name), "missing required field")
        return out

    def _dict(self, value: Any, t: mi.DictType, path: Path, extra: Mapping[str, Any]) -> Any:
        if not isinstance(value, dict):
            return self._wrong_type(path, "table", value)
        self._length(value, t, path, "entry", "entries")
        out: dict[str, Any] = {}
        for key, item in value.items():
            # Keys are TOML keys, always strings; check their format without substitution.
            self._str_constraints(key, t.key_type, (*path, key), "invalid name: ")
            out[key] = self.check(item, t.value_type, (*path, key))
        return out

    def _array(
        self, value: Any, t: mi.ListType | mi.VarTupleType, path: Path, extra: Mapping[str, Any]
    ) -> Any:
        if not isinstance(value, list):
            return self._wrong_type(path, "array", value)
        self._length(value, t, path, "item", "items")
        return [self.check(item, t.item_type, (*path, index)) for index, item in enumerate(value)]

    def _length(
        self, value: list[Any] | dict[str, Any], t: Any, path: Path, one: str, many: str
    ) -> None:
        if t.min_length is not None and len(value) < t.min_length:
            noun = one if t.min_length == 1 else many
            self.report(path, f"must have at least {t.min_length} {noun}")
        if t.max_length is not None and len(value) > t.max_length:
            noun = one if t.max_length == 1 else many
            self.report(path, f"must have at most {t.max_length} {noun}")

    def _union(self, value: Any, t: mi.UnionType, path: Path, extra: Mapping[str, Any]) -> Any:
        # TOML has no null, so an optional field that is present is its non-None type.
        present = [option for option in t.types if not isinstance(option, mi.NoneType)]
        if len(present) == 1:
            return self.check(value, present[0], path, extra)
        # A number or a word (server.workers: 4 or "auto"): the value's TOML type picks.
        kinds = {_union_kind(option, t) for option in present}
        if len(kinds) != len(present):
            raise TypeError(f"settings schema uses unsupported union {t!r}")
        for option in present:
            if _union_kind(option, t) == _value_kind(value):
                return self.check(value, option, path, extra)
        return self._wrong_type(path, " or ".join(sorted(kinds)), value)

    def _literal(self, value: Any, t: mi.LiteralType, path: Path, extra: Mapping[str, Any]) -> Any:
        if isinstance(value, str):
            value = self._substitute(value, path)
            if value is None:
                return None
        if value not in t.values:
            choices = ", ".join(_show(choice) for choice in t.values)
            self.report(path, f"must be one of {choices}; got {_show(value)}")
        return value

    def _str(self, value: Any, t: mi.StrType, path: Path, extra: Mapping[str, Any]) -> Any:
        if not isinstance(value, str):
            return self._wrong_type(path, "string", value)
        text = self._substitute(value, path)
        if text is not None and self._str_constraints(text, t, path, "", extra):
            self._url(text, path, extra)
        return text if text is not None else value

    def _substitute(self, value: str, path: Path) -> str | None:
        text, errors = substitute(value, self.env)
        for error in errors:
            self.report(path, error)
        return None if errors else text

    def _str_constraints(
        self, text: str, t: mi.Type, path: Path, prefix: str, extra: Mapping[str, Any] = {}
    ) -> bool:
        if isinstance(t, mi.Metadata):
            return self._str_constraints(text, t.type, path, prefix, t.extra or {})
        if not isinstance(t, mi.StrType):
            return True
        if t.min_length is not None and len(text) < t.min_length:
            message = "must not be empty" if t.min_length == 1 else f"too short (< {t.min_length})"
            self.report(path, prefix + message)
            return False
        if t.max_length is not None and len(text) > t.max_length:
            self.report(path, f"{prefix}too long (> {t.max_length} characters)")
            return False
        if t.pattern is not None and not re.search(t.pattern, text):
            hint = extra.get("hint") or f"must match the pattern {t.pattern}"
            shown = "" if extra.get("secret") else f", got {_show(text)}"
            self.report(path, f"{prefix}{hint}{shown}")
            return False
        return True

    def _url(self, text: str, path: Path, extra: Mapping[str, Any]) -> None:
        schemes: tuple[str, ...] | None = extra.get("url_schemes")
        if not schemes:
            return
        try:
            parts = urlsplit(text)
            valid = parts.scheme in schemes and bool(parts.hostname) and text.isprintable()
            valid = valid and not any(c.isspace() for c in text)
            parts.port  # noqa: B018 -- raises ValueError for a bad port
        except ValueError:
            valid = False
        if not valid:
            wanted = " or ".join(schemes)
            shown = _show(mask_url(text))
            self.report(path, f"must be a URL with scheme {wanted} and a host, got {shown}")

    def _int(self, value: Any, t: mi.IntType, path: Path, extra: Mapping[str, Any]) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return self._wrong_type(path, "integer", value)
        self._bounds(value, t, path)
        return value

    def _float(self, value: Any, t: mi.FloatType, path: Path, extra: Mapping[str, Any]) -> Any:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self._wrong_type(path, "number", value)
        if isinstance(value, float) and not math.isfinite(value):
            self.report(path, f"must be a finite number, got {_show(value)}")
        else:
            self._bounds(value, t, path)
        return value

    def _bounds(self, value: float, t: mi.IntType | mi.FloatType, path: Path) -> None:
        if t.gt is not None or t.lt is not None or t.multiple_of is not None:
            raise TypeError("settings schema: use only ge/le bounds on numbers")
        # Any integer must also fit the 64 bits msgspec (and the TOML spec) allow.
        low = t.ge if t.ge is not None else _INT_MIN if isinstance(value, int) else None
        high = t.le if t.le is not None else _INT_MAX if isinstance(value, int) else None
        if (low is None or value >= low) and (high is None or value <= high):
            return
        if t.ge is not None and t.le is not None:
            self.report(path, f"must be between {t.ge} and {t.le}, got {_show(value)}")
        elif low is not None and value < low:
            self.report(path, f"must be at least {low}, got {_show(value)}")
        else:
            self.report(path, f"must be at most {high}, got {_show(value)}")

    def _bool(self, value: Any, t: mi.BoolType, path: Path, extra: Mapping[str, Any]) -> Any:
        if not isinstance(value, bool):
            self._wrong_type(path, "boolean", value)
        return value


def _show(value: object) -> str:
    """A value as it would be written in TOML, long strings shortened."""
    if isinstance(value, str):
        return quote(_shorten(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _shorten(repr(value))
    return toml_type_name(value)


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "..."


def _union_kind(option: mi.Type, union: mi.UnionType) -> str:
    """The TOML type an option of a union takes: a union may mix one of each."""
    if isinstance(option, mi.IntType):
        return "integer"
    if isinstance(option, (mi.StrType, mi.LiteralType)):
        return "string"
    raise TypeError(f"settings schema uses unsupported union {union!r}")


def _value_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "integer" if isinstance(value, int) else "string" if isinstance(value, str) else "?"
