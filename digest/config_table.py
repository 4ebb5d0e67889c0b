"""Reading the configuration file: durations, and one TOML table at a time with typed getters
that name the dotted setting and the file in every error (used by :mod:`digest.config`)."""

from __future__ import annotations

import builtins
import difflib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from digest.errors import ConfigError

__all__ = ["Table", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: object) -> timedelta:
    """Turn ``90``, ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"`` or ``"2w"`` into a timedelta.

    :raises ValueError: for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(value)
    if seconds < 0:
        raise ValueError(value)
    return timedelta(seconds=seconds)


class Table:
    """Reads one TOML table, converting values and naming ``dotted.key`` and file in errors."""

    def __init__(self, data: Any, prefix: str, path: Path) -> None:
        self.path = path
        self.prefix = prefix
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error(prefix, "must be a table", "write it as [" + prefix + "]")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"Setting {key} in {self.path} {problem}; {fix}.")

    def raw(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def str(self, name: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self.raw(name, default)
        if value is None:
            if required:
                raise self.error(self.key(name), "is missing", f"add {name} = \"...\"")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.error(self.key(name), f"must be a non-empty string, not {value!r}",
                             f"write it as {name} = \"...\"")
        return value

    def int(self, name: builtins.str, default: builtins.int | None, lo: builtins.int,
            hi: builtins.int) -> Any:
        value = self.raw(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(self.key(name), f"must be a whole number from {lo} to {hi}, "
                             f"not {value!r}", f"write e.g. {name} = {default or lo}")
        return value

    def float(self, name: builtins.str, default: builtins.float | None, lo: builtins.float) -> Any:
        value = self.raw(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < lo:
            raise self.error(self.key(name), f"must be a number of at least {lo}, not {value!r}",
                             f"write e.g. {name} = {default or lo}")
        return float(value)

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.error(self.key(name), f"must be true or false, not {value!r}",
                             f"write {name} = true or {name} = false")
        return value

    def duration(self, name: builtins.str, default: timedelta | None) -> Any:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError:
            raise self.error(self.key(name), f"must be a duration such as \"90s\", \"15m\", "
                             f"\"24h\" or \"7d\", not {value!r}", "fix the value") from None

    def strings(self, name: builtins.str,
                default: tuple[builtins.str, ...] = ()) -> tuple[builtins.str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(self.key(name), f"must be a list of strings, not {value!r}",
                             f"write it as {name} = [\"...\", \"...\"]")
        return tuple(value)

    def table(self, name: builtins.str) -> Table:
        self.used.add(name)
        return Table(self.data.get(name), self.key(name), self.path)

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, sorted(self.used), n=1)
            fix = f"did you mean {close[0]}?" if close else "remove it or check the spelling"
            raise self.error(self.key(name), "is not a known setting", fix.rstrip("?"))
