"""Typed, key-naming readers over raw stack config (plain Python, no Pulumi).

Every error names the full key (``llm-ab:split.canaryPercent``), the value that was given and
what is allowed, so a bad ``Pulumi.<stack>.yaml`` fails before any resource is registered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

PROJECT = "llm-ab"

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ConfigError(ValueError):
    """A stack config value is missing or invalid; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{PROJECT}:{key} {message}")


def is_dns_label(value: str) -> bool:
    """A Kubernetes DNS label: lower-case letters, digits and '-', at most 63 characters."""
    return len(value) <= 63 and bool(_DNS_LABEL.match(value))


def show(value: Any) -> str:
    """Render a config value the way a user wrote it (strings quoted, bools lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


class Section:
    """A view of one config object: typed getters that know the key path for errors.

    Unknown keys are reported by :meth:`done`, so a typo such as ``canaryPercnt`` is an error,
    not a silently ignored setting.
    """

    def __init__(self, path: str, raw: Any) -> None:
        self.path = path
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"must be an object, got {show(raw)}")
        self._raw: Mapping[str, Any] = raw
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str) -> Any:
        self._seen.add(name)
        return self._raw.get(name)

    def has(self, name: str) -> bool:
        return self._raw.get(name) is not None

    def section(self, name: str) -> Section:
        return Section(self.key(name), self._get(name))

    def raw(self, name: str) -> Any:
        return self._get(name)

    def string(self, name: str, default: str | None = None, *, pattern: re.Pattern[str] | None = None,
               allowed: str = "") -> str:
        value = self._get(name)
        if value is None:
            if default is None:
                raise ConfigError(self.key(name), "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.key(name), f"must be a non-empty string, got {show(value)}")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(self.key(name), f"must be {allowed}, got {show(value)}")
        return value

    def optional_string(self, name: str) -> str | None:
        value = self._get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"must be a string, got {show(value)}")
        return value

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        options = list(choices)
        value = self._get(name)
        if value is None:
            return default
        if value not in options:
            raise ConfigError(self.key(name), f"must be one of {', '.join(options)}, got {show(value)}")
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        # Pulumi config stores scalars as strings unless the YAML value was typed.
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, got {show(value)}")
        return value

    def number(self, name: str, default: float, *, lo: float, hi: float | None = None) -> float:
        value = self._get(name)
        allowed = f"a number from {_fmt(lo)} to {_fmt(hi)}" if hi is not None else f"a number >= {_fmt(lo)}"
        if value is None:
            return default
        parsed = _to_number(value)
        if parsed is None or not math.isfinite(parsed) or parsed < lo or (hi is not None and parsed > hi):
            raise ConfigError(self.key(name), f"must be {allowed}, got {show(value)}")
        return parsed

    def integer(self, name: str, default: int, *, lo: int, hi: int | None = None) -> int:
        value = self._get(name)
        allowed = f"a whole number from {lo} to {hi}" if hi is not None else f"a whole number >= {lo}"
        if value is None:
            return default
        parsed = _to_number(value)
        if parsed is None or parsed != int(parsed) or parsed < lo or (hi is not None and parsed > hi):
            raise ConfigError(self.key(name), f"must be {allowed}, got {show(value)}")
        return int(parsed)

    def quantity(self, name: str, default: str) -> str:
        """A Kubernetes resource quantity such as ``500m``, ``4``, ``16Gi``."""
        value = self._get(name)
        if value is None:
            return default
        text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not _QUANTITY.match(text):
            raise ConfigError(self.key(name), f"must be a Kubernetes quantity such as 500m, 4 or 16Gi, got {show(value)}")
        return text

    def dns_label(self, name: str, default: str) -> str:
        value = self.string(name, default)
        if not is_dns_label(value):
            raise ConfigError(
                self.key(name),
                f"must be a DNS label (lower-case letters, digits and '-', at most 63 characters), got {show(value)}",
            )
        return value

    def string_map(self, name: str) -> dict[str, str]:
        value = self._get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(self.key(name), f"must be an object of string values, got {show(value)}")
        return {str(k): str(v) for k, v in value.items()}

    def string_list(self, name: str, default: Iterable[str] = ()) -> tuple[str, ...]:
        value = self._get(name)
        if value is None:
            return tuple(default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(self.key(name), f"must be a list of strings, got {show(value)}")
        return tuple(value)

    def done(self) -> None:
        """Reject keys this section does not know (typos would otherwise be ignored)."""
        unknown = sorted(set(self._raw) - self._seen)
        if unknown:
            known = ", ".join(sorted(self._seen))
            raise ConfigError(self.key(unknown[0]), f"is not a known setting (known here: {known})")


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)
