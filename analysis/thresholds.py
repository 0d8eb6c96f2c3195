"""The A/B decision's thresholds (stack config ``analysis.*``): one validated, frozen object.

Every field has a camelCase config key (:data:`CONFIG_KEYS`), so the stack settings loader can
build a :class:`Thresholds` from ``analysis.*`` values with :func:`thresholds_from_config` and the
in-cluster Job can pass the same values as CLI flags. Errors name the key and the allowed range.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

CONFIG_PREFIX = "analysis."

CONFIG_KEYS: Mapping[str, str] = {
    "max_ttft_p50_regression_pct": "maxTtftP50RegressionPct",
    "max_ttft_p95_regression_pct": "maxTtftP95RegressionPct",
    "max_e2e_p50_regression_pct": "maxE2eP50RegressionPct",
    "max_e2e_p95_regression_pct": "maxE2eP95RegressionPct",
    "max_itl_p50_regression_pct": "maxItlP50RegressionPct",
    "max_tokens_per_s_drop_pct": "maxTokensPerSecondDropPct",
    "max_error_rate": "maxErrorRate",
    "max_error_rate_increase": "maxErrorRateIncrease",
    "min_case_pass_rate": "minCasePassRate",
    "max_case_pass_rate_drop": "maxCasePassRateDrop",
    "min_samples": "minSamples",
    "confidence": "confidence",
}
"""Python field name -> config key (without the ``analysis.`` prefix)."""

MAX_REGRESSION_PCT = 1000.0
"""Upper bound of a regression margin: beyond 10x slower a margin means nothing."""


class ThresholdError(ValueError):
    """A threshold is out of range or of the wrong type; the message names the config key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{CONFIG_PREFIX}{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Non-inferiority margins and limits of the canary against the stable variant.

    Latency margins are relative (percent of the stable value): the canary may be at most that
    much slower. ``None`` makes a metric informational (shown, never decides).
    """

    max_ttft_p50_regression_pct: float | None = 20.0
    """Largest allowed increase of the median time to first token, percent. Default 20."""
    max_ttft_p95_regression_pct: float | None = 30.0
    """Largest allowed increase of the 95th-percentile time to first token, percent. Default 30."""
    max_e2e_p50_regression_pct: float | None = 20.0
    """Largest allowed increase of the median end-to-end latency, percent. Default 20."""
    max_e2e_p95_regression_pct: float | None = 30.0
    """Largest allowed increase of the 95th-percentile end-to-end latency, percent. Default 30."""
    max_itl_p50_regression_pct: float | None = None
    """Largest allowed increase of the median (over requests) mean inter-token latency. Default: informational."""
    max_tokens_per_s_drop_pct: float | None = None
    """Largest allowed drop of the median per-request output tokens/s, percent. Default: informational."""
    max_error_rate: float = 0.05
    """Largest error rate the canary may have (fraction, absolute). Default 0.05."""
    max_error_rate_increase: float = 0.02
    """Largest increase of the error rate over stable (fraction, i.e. 0.02 = 2 points). Default 0.02."""
    min_case_pass_rate: float = 0.9
    """Smallest fraction of scored golden-case requests the canary must pass. Default 0.9."""
    max_case_pass_rate_drop: float = 0.1
    """Largest drop of the case-pass rate below stable (fraction). Default 0.1."""
    min_samples: int = 30
    """Fewest requests per variant (successful ones for latency metrics) before a metric may pass. Default 30."""
    confidence: float = 0.95
    """Two-sided confidence level of every interval; each verdict bound is one-sided at (1+c)/2. Default 0.95."""

    def __post_init__(self) -> None:
        for name in (
            "max_ttft_p50_regression_pct",
            "max_ttft_p95_regression_pct",
            "max_e2e_p50_regression_pct",
            "max_e2e_p95_regression_pct",
            "max_itl_p50_regression_pct",
        ):
            _check_number(name, getattr(self, name), 0.0, MAX_REGRESSION_PCT, optional=True)
        _check_number("max_tokens_per_s_drop_pct", self.max_tokens_per_s_drop_pct, 0.0, 100.0, optional=True)
        for name in ("max_error_rate", "max_error_rate_increase", "min_case_pass_rate", "max_case_pass_rate_drop"):
            _check_number(name, getattr(self, name), 0.0, 1.0)
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or self.min_samples < 2:
            raise ThresholdError(CONFIG_KEYS["min_samples"], f"must be an integer >= 2, got {self.min_samples!r}")
        _check_number("confidence", self.confidence, 0.5, 0.999, exclusive_low=False)

    def to_dict(self) -> dict[str, Any]:
        """The thresholds keyed by config key (as in ``analysis.*``)."""
        return {CONFIG_KEYS[f.name]: getattr(self, f.name) for f in fields(self)}


def _finite(value: float) -> bool:
    """Whether ``value`` is a finite float (an int too large for a float is not one)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_number(
    name: str, value: Any, low: float, high: float, *, optional: bool = False, exclusive_low: bool = False
) -> None:
    key = CONFIG_KEYS[name]
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise ThresholdError(key, f"must be a number between {low:g} and {high:g}, got {value!r}")
    if value < low or value > high or (exclusive_low and value == low):
        raise ThresholdError(key, f"must be between {low:g} and {high:g}, got {value:g}")


@dataclass(frozen=True)
class GateLimit:
    """How far a threshold may go in the gate before its row can no longer fail a bad canary."""

    name: str
    """The :class:`Thresholds` field."""
    limit: float
    """The largest allowed value (the smallest, with ``at_least``)."""
    why: str
    """What a canary past the limit would get away with, for the message."""
    at_least: bool = False
    required: bool = False
    """``None`` (informational) is not allowed: the row would never decide."""

    @property
    def may_be_none(self) -> bool:
        """A margin the gate takes as ``None`` (informational; another row of its kind still decides)."""
        return self.name.endswith("_pct") and not self.required


UNSAFE_KEY = "unsafeThresholds"
"""The ``analysis`` key that lets the gate's thresholds past :data:`GATE_LIMITS` (a warning in every preview)."""

GATE_LIMITS: tuple[GateLimit, ...] = (
    GateLimit("max_ttft_p50_regression_pct", 100.0, "a canary more than twice as slow to its first token",
              required=True),
    GateLimit("max_ttft_p95_regression_pct", 100.0, "a canary more than twice as slow to its first token (p95)"),
    GateLimit("max_e2e_p50_regression_pct", 100.0, "a canary more than twice as slow end to end", required=True),
    GateLimit("max_e2e_p95_regression_pct", 100.0, "a canary more than twice as slow end to end (p95)"),
    GateLimit("max_itl_p50_regression_pct", 100.0, "a canary more than twice as slow between tokens"),
    GateLimit("max_tokens_per_s_drop_pct", 50.0, "a canary at less than half the throughput"),
    GateLimit("max_error_rate", 0.1, "a canary failing more than one request in ten"),
    GateLimit("max_error_rate_increase", 0.1, "a canary failing over ten points more requests than stable"),
    GateLimit("min_case_pass_rate", 0.5, "a canary failing more than half its golden cases",
              at_least=True),
    GateLimit("max_case_pass_rate_drop", 0.5, "a canary passing over 50 points fewer golden cases than stable"),
)
"""Where a threshold would switch its row of the gate off: the stack settings refuse a value past its limit
unless ``analysis.unsafeThresholds`` is true. ``maxErrorRate: 1``, ``minCasePassRate: 0`` and no latency margins,
all in the ranges above, promoted a canary three times slower with 20 % errors."""


def past_gate_limits(thresholds: Thresholds) -> list[tuple[GateLimit, float | None]]:
    """The thresholds past their :data:`GATE_LIMITS` entry (a required one unset, or beyond the limit), with
    their values."""
    found: list[tuple[GateLimit, float | None]] = []
    for limit in GATE_LIMITS:
        value = getattr(thresholds, limit.name)
        if value is None:
            if limit.required:
                found.append((limit, value))
        elif value < limit.limit if limit.at_least else value > limit.limit:
            found.append((limit, value))
    return found


def gate_limit_problems(thresholds: Thresholds) -> list[ThresholdError]:
    """:func:`past_gate_limits` as refusals, each naming its key, value and the range the gate takes."""
    problems: list[ThresholdError] = []
    for limit, value in past_gate_limits(thresholds):
        low, high = (limit.limit, 1.0) if limit.at_least else (0.0, limit.limit)
        allowed = f"from {low:g} to {high:g}" + (" or none" if limit.may_be_none else "")
        opt_out = f"{CONFIG_PREFIX}{UNSAFE_KEY}: true allows it"
        if value is None:
            problem = (f"must be set, {allowed}, for the gate (none makes the row informational, so {limit.why} "
                       f"could be promoted; {opt_out}), got none")
        else:
            beyond = "below" if limit.at_least else "above"
            problem = (f"must be {allowed} for the gate ({beyond} {limit.limit:g}, {limit.why} could be promoted; "
                       f"{opt_out}), got {value:g}")
        problems.append(ThresholdError(CONFIG_KEYS[limit.name], problem))
    return problems


_BY_KEY = {key: name for name, key in CONFIG_KEYS.items()}


def thresholds_from_config(values: Mapping[str, Any], other_keys: Collection[str] = ()) -> Thresholds:
    """Build :class:`Thresholds` from config values keyed ``analysis.<key>`` or ``<key>`` (camelCase).

    ``values`` is the ``analysis`` config object (or its flat ``analysis.*`` keys). Missing keys
    keep their defaults; ``other_keys`` are the object's non-threshold settings (``enabled``,
    ``requests``, ...), skipped here; any other unknown key raises :class:`ThresholdError`
    listing the known ones, so a typo in stack config is not silently ignored. Numbers given as
    strings (as ``pulumi config set`` stores them) are converted.
    """
    kwargs: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key[len(CONFIG_PREFIX) :] if raw_key.startswith(CONFIG_PREFIX) else raw_key
        if key in other_keys:
            continue
        if key not in _BY_KEY:
            raise ThresholdError(key, f"is not a known threshold (known: {', '.join(CONFIG_KEYS.values())})")
        name = _BY_KEY[key]
        kwargs[name] = _coerce(key, name, value)
    return Thresholds(**kwargs)


def threshold_value(key: str, value: Any) -> Any:
    """One ``analysis.<key>`` value as :class:`Thresholds` takes it: coerced from the string that
    ``pulumi config set`` or a flag gives, range-checked; :class:`ThresholdError` names the key."""
    if key not in _BY_KEY:
        raise ThresholdError(key, f"is not a known threshold (known: {', '.join(CONFIG_KEYS.values())})")
    name = _BY_KEY[key]
    coerced = _coerce(key, name, value)
    Thresholds(**{name: coerced})
    return coerced


def field_docs() -> dict[str, str]:
    """Each :class:`Thresholds` field's docstring (the line under it), by field name: the help of
    the stack setting and of the flag comes from one place."""
    tree = ast.parse(inspect.getsource(Thresholds))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def analysis_object_from_pulumi_json(document: Any) -> dict[str, Any]:
    """The ``<project>:analysis`` object from ``pulumi config --json`` output (empty when absent).

    Pulumi prints each key as ``{"value": "<json text>", "objectValue": {...}, "secret": bool}``;
    flat ``<project>:analysis.<key>`` entries are accepted too.
    """
    if not isinstance(document, dict):
        raise ThresholdError("(file)", "pulumi config --json output must be a JSON object")
    found: dict[str, Any] = {}
    for full_key, entry in document.items():
        _, _, key = str(full_key).rpartition(":")
        value = entry.get("objectValue", entry.get("value")) if isinstance(entry, dict) else entry
        if key == "analysis":
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ThresholdError("(object)", f"is not a JSON object: {value!r}") from None
            if not isinstance(value, dict):
                raise ThresholdError("(object)", f"must be an object of settings, got {value!r}")
            found.update(value)
        elif key.startswith(CONFIG_PREFIX):
            found[key[len(CONFIG_PREFIX) :]] = value
    return found


def _coerce(key: str, name: str, value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("none", "null", "off", ""):
        return None
    try:
        return int(text) if name == "min_samples" else float(text)
    except ValueError:
        kind = "an integer" if name == "min_samples" else "a number"
        raise ThresholdError(key, f"must be {kind}, got {value!r}") from None
