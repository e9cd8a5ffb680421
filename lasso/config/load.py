"""Loading settings: TOML text -> every problem, or a complete ``Settings``.

Loading is a pure function of the text and the environment. It either returns a
new ``Settings`` or raises ``ConfigError`` listing every problem found; it never
returns something half-applied and keeps no global state. Stages:

1. ``tomllib`` parses the text (a syntax error is one problem with line/column);
2. the schema walk checks every value and substitutes ``${VAR}``;
3. cross-field checks (unique ids, colliding chain identifiers, ...);
4. only with zero problems, ``msgspec.convert`` builds the typed file and
   ``build_settings`` resolves it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import msgspec

from lasso.config.checks import cross_check
from lasso.config.model import Settings, build_settings
from lasso.config.problems import ConfigError, ConfigProblem
from lasso.config.schema import SettingsFile
from lasso.config.validate import Walker

__all__ = ["load_settings", "parse_settings", "settings_from_dict"]

_SETTINGS_TYPE = msgspec.inspect.type_info(SettingsFile)
_TOML_POSITION = re.compile(
    r"^(?P<reason>.*?)\s*\(at (?P<where>line \d+, column \d+|end of document)\)$"
)


def load_settings(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> Settings:
    """Read and validate the settings file at ``path``; ``env`` defaults to ``os.environ``."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            text = file.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        message = f"cannot read {source}: {error}"
    else:
        return parse_settings(text, env=os.environ if env is None else env, source=source)
    raise ConfigError([ConfigProblem(path="", message=message)], source=source)


def parse_settings(text: str, *, env: Mapping[str, str], source: str = "<string>") -> Settings:
    """Validate settings given as TOML text, substituting ``${VAR}`` from ``env``."""
    return settings_from_dict(_parse_toml(text, source), env=env, source=source)


def settings_from_dict(
    tree: Mapping[str, Any], *, env: Mapping[str, str], source: str = "<dict>"
) -> Settings:
    """Validate settings already parsed from TOML (a dict of TOML values)."""
    walker = Walker(env)
    substituted = walker.check(dict(tree), _SETTINGS_TYPE, ())
    cross_check(substituted if isinstance(substituted, dict) else {}, walker.report)
    if walker.problems:
        raise ConfigError(walker.in_document_order(), source=source)
    try:
        file = msgspec.convert(substituted, SettingsFile)
    except msgspec.ValidationError as error:
        # The walk should have caught this; report it rather than crash.
        raise ConfigError([_msgspec_problem(error)], source=source) from None
    return build_settings(file)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_POSITION.match(str(error))
        message = f"invalid TOML: {error}"
        if match is not None:
            message = f"invalid TOML at {match['where']}: {match['reason']}"
    except ValueError as error:  # e.g. an integer with more than 4300 digits
        message = f"invalid TOML: {error}"
    except RecursionError:
        message = "invalid TOML: arrays or tables nested too deeply"
    raise ConfigError([ConfigProblem(path="", message=message)], source=source)


def _msgspec_problem(error: msgspec.ValidationError) -> ConfigProblem:
    message, found, where = str(error).rpartition(" - at `$")
    if not found:
        return ConfigProblem(path="", message=str(error))
    return ConfigProblem(path=where.rstrip("`").lstrip("."), message=message)
