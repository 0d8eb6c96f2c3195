"""The building blocks of the settings schema (pydantic v2): config sections, typed fields with
the project's error messages, and the one place pydantic's errors become :class:`ConfigError`.

Every error names the full key (``llm-ab:split.canaryPercent``), the value that was given and what
is allowed, so a bad ``Pulumi.<stack>.yaml`` fails before any resource is registered. Field types
are ``Annotated`` aliases whose before-validators coerce what the Pulumi CLI stores (scalars as
strings) and raise our message; sections forbid unknown keys and read camelCase aliases.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from components.quantity import quantity_value
from policy.contract import image_is_pinned

PROJECT = "llm-ab"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
OBJECT_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
"""A non-empty Kubernetes label value (also the name part of a label key)."""
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
"""A DNS-1123 subdomain (at most 253 characters: :func:`is_dns_subdomain`)."""

PINNED_COMMIT = "a pinned commit: 40 lower-case hex characters (branches and tags move)"


class ConfigError(ValueError):
    """A stack config value is missing or invalid; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{PROJECT}:{key} {message}")


def show(value: Any) -> str:
    """Render a config value the way a user wrote it (strings quoted, bools lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def is_dns_label(value: str) -> bool:
    """A Kubernetes DNS label: lower-case letters, digits and '-', at most 63 characters."""
    return len(value) <= 63 and bool(DNS_LABEL.match(value))


def is_dns_subdomain(value: str) -> bool:
    """A Kubernetes DNS-1123 subdomain (most object names, a storage class): dot-separated DNS labels, at most
    253 characters."""
    return len(value) <= 253 and bool(DNS_SUBDOMAIN.match(value))


def is_label_key(key: str) -> bool:
    """A Kubernetes label key: an optional DNS-subdomain prefix and '/', then a name (:data:`LABEL_VALUE`)."""
    prefix, slash, name = key.rpartition("/")
    return bool(LABEL_VALUE.match(name)) and (not slash or is_dns_subdomain(prefix))


def is_label_value(value: str) -> bool:
    """A Kubernetes label value: empty, or at most 63 letters, digits, '-', '_', '.', alphanumeric at both ends."""
    return value == "" or bool(LABEL_VALUE.match(value))


def problem(message: str, at: str = "") -> PydanticCustomError:
    """The error a validator raises: ``message`` about the field being validated, or about the
    field ``at`` (a dotted key relative to the section) for rules across fields."""
    return PydanticCustomError("config", "{message}", {"message": message, "at": at})


# --- field types ----------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def to_number(value: Any) -> float | None:
    """A config value as a finite number, else None: the one place numbers are read, so every number
    key (whole or not) refuses ``inf``, ``Infinity`` and ``nan`` (strings or YAML's ``.inf``) with its
    own "must be" message instead of an OverflowError from ``int()``."""
    if isinstance(value, bool):
        return None
    try:
        parsed = float(value) if isinstance(value, int | float | str) else None
    except (ValueError, OverflowError):  # not a number; an int too large for a float
        return None
    return parsed if parsed is not None and math.isfinite(parsed) else None


def _number(lo: float, hi: float | None) -> Callable[[Any], float]:
    allowed = f"a number from {_fmt(lo)} to {_fmt(hi)}" if hi is not None else f"a number >= {_fmt(lo)}"

    def check(value: Any) -> float:
        parsed = to_number(value)
        if parsed is None or parsed < lo or (hi is not None and parsed > hi):
            raise problem(f"must be {allowed}, got {show(value)}")
        return parsed
    return check


def _whole(lo: int, hi: int | None, why: str = "") -> Callable[[Any], int]:
    allowed = f"a whole number from {lo} to {hi}" if hi is not None else f"a whole number >= {lo}"
    allowed += f" ({why})" if why else ""

    def check(value: Any) -> int:
        parsed = to_number(value)
        if parsed is None or parsed != int(parsed) or parsed < lo or (hi is not None and parsed > hi):
            raise problem(f"must be {allowed}, got {show(value)}")
        return int(parsed)
    return check


# The rule factories below (capitalised, as they read in a field: ``replicas: Annotated[int, WholeNumber(1, 1000)]``)
# return the field's validator, not a type: a call is no type to a type checker, ``Annotated[int, <validator>]`` is.


def Number(lo: float, hi: float | None = None) -> BeforeValidator:  # noqa: N802 - a rule factory
    """``Annotated[float, Number(lo, hi)]``: a number within bounds; ``"10"`` (a CLI string) is accepted."""
    return BeforeValidator(_number(lo, hi))


def WholeNumber(lo: int, hi: int | None = None, why: str = "") -> BeforeValidator:  # noqa: N802 - a rule factory
    """``Annotated[int, WholeNumber(lo, hi)]``: a whole number within bounds; ``"10"`` and ``10.0`` are accepted,
    ``2.5`` is not. ``why`` says where the bounds come from, in the error."""
    return BeforeValidator(_whole(lo, hi, why))


def _unset_or(check: Callable[[Any], Any]) -> BeforeValidator:
    """``check``, or None for an unset value (None, or ``""`` as a generated ``Pulumi.yaml`` default holds it)."""
    return BeforeValidator(lambda value: None if value is None or value == "" else check(value))


def OptionalNumber(lo: float, hi: float | None = None) -> BeforeValidator:  # noqa: N802 - a rule factory
    """``Annotated[float | None, OptionalNumber(lo, hi)]``: a number within bounds; empty means unset (None)."""
    return _unset_or(_number(lo, hi))


def _boolean(value: Any) -> bool:
    # Pulumi config stores scalars as strings unless the YAML value was typed.
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise problem(f"must be true or false, got {show(value)}")
    return value


Bool = Annotated[bool, BeforeValidator(_boolean)]


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise problem(f"must be a non-empty string, got {show(value)}")
    return value


def _text_that(ok: Callable[[str], Any], must_be: str) -> Callable[[Any], str]:
    """A before-validator: a non-empty string for which ``ok`` holds, else "must be <must_be>"."""
    def check(value: Any) -> str:
        text = _text(value)
        if not ok(text):
            raise problem(f"must be {must_be}, got {show(value)}")
        return text
    return check


def Text(rule: re.Pattern[str] | Callable[[str], object] | None = None, allowed: str = "") -> BeforeValidator:  # noqa: N802
    """``Annotated[str, Text(rule, allowed)]``: a non-empty string, matching ``rule`` (a pattern, or a predicate)
    when given; ``allowed`` says what it is."""
    if rule is None:
        return BeforeValidator(_text)
    ok = rule.match if isinstance(rule, re.Pattern) else rule
    return BeforeValidator(_text_that(ok, allowed))


def _optional_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise problem(f"must be a string, got {show(value)}")
    return value


OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
"""A string; empty means unset (None)."""


def OneOf(choices: Sequence[str]) -> BeforeValidator:  # noqa: N802 - a rule factory
    """``Annotated[str, OneOf(choices)]``: one of ``choices``."""
    def check(value: Any) -> str:
        if value not in choices:
            raise problem(f"must be one of {', '.join(choices)}, got {show(value)}")
        return str(value)
    return BeforeValidator(check)


def OptionalChoice(choices: Sequence[str]) -> BeforeValidator:  # noqa: N802 - a rule factory
    """``Annotated[str | None, OptionalChoice(choices)]``: one of ``choices``; empty means unset (None)."""
    def check(value: Any) -> str | None:
        if value is None or value == "":
            return None
        if value not in choices:
            raise problem(f"must be one of {', '.join(choices)} (or empty: none), got {show(value)}")
        return str(value)
    return BeforeValidator(check)


def OptionalWholeNumber(lo: int, hi: int | None = None) -> BeforeValidator:  # noqa: N802 - a rule factory
    """``Annotated[int | None, OptionalWholeNumber(lo, hi)]``: a whole number within bounds; empty means unset."""
    return _unset_or(_whole(lo, hi))


def Choice(enum: type[Enum]) -> BeforeValidator:  # noqa: N802 - a rule factory
    """``Annotated[E, Choice(E)]``: one of an enum's values, as the enum."""
    values = [e.value for e in enum]

    def check(value: Any) -> Any:
        if value not in values:
            raise problem(f"must be one of {', '.join(values)}, got {show(value)}")
        return enum(value)
    return BeforeValidator(check)


def _quantity(value: Any) -> str:
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not QUANTITY.match(text):
        raise problem(f"must be a Kubernetes quantity such as 500m, 4 or 16Gi, got {show(value)}")
    return text


Quantity = Annotated[str, BeforeValidator(_quantity)]
"""A Kubernetes resource quantity such as ``500m``, ``4``, ``16Gi``."""

OptionalQuantity = Annotated[str | None, BeforeValidator(lambda v: None if v is None or v == "" else _quantity(v))]
"""A :data:`Quantity`, or unset (None or empty)."""

def _positive_quantity(value: Any) -> str:
    text = _quantity(value)
    if quantity_value(text) <= 0:
        raise problem(f"must be a Kubernetes quantity greater than 0 such as 500m, 4 or 16Gi, got {show(value)}")
    return text


PositiveQuantity = Annotated[str, BeforeValidator(_positive_quantity)]
"""A :data:`Quantity` above zero (a volume or memory size: a zero size fails only when applied)."""


def PositiveQuantityUpTo(most: str, why: str) -> BeforeValidator:  # noqa: N802 - a rule factory
    """``Annotated[str, PositiveQuantityUpTo(most, why)]``: a :data:`PositiveQuantity` of at most ``most``; ``why``
    says where that bound comes from."""
    def check(value: Any) -> str:
        text = _positive_quantity(value)
        if quantity_value(text) > quantity_value(most):
            raise problem(f"must be a Kubernetes quantity greater than 0 and at most {most} ({why}), got {show(value)}")
        return text
    return BeforeValidator(check)


DnsLabel = Annotated[str, BeforeValidator(_text_that(
    is_dns_label, "a DNS label (lower-case letters, digits and '-', at most 63 characters)"))]

DNS_SUBDOMAIN_ALLOWED = ("a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most 253 characters, "
                         "each dot-separated part starting and ending with a letter or digit")

OptionalDnsSubdomain = Annotated[str | None, BeforeValidator(
    lambda value: None if value is None or value == "" else _text_that(is_dns_subdomain, DNS_SUBDOMAIN_ALLOWED)(value))]
"""The name of a Kubernetes object such as a storage class, or unset (None or empty)."""

PinnedImage = Annotated[str, BeforeValidator(_text_that(
    image_is_pinned, "an image pinned by an exact version tag or a digest (e.g. repo:1.3.4 or repo@sha256:...), "
    "never latest or untagged"))]
"""An image reference pinned by an exact version tag or a digest (``policy.contract``'s rule)."""


def _string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise problem(f"must be a list of strings, got {show(value)}")
    return tuple(value)


StringList = Annotated[tuple[str, ...], BeforeValidator(_string_list)]


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise problem(f"must be an object of string values, got {show(value)}")
    return {str(k): str(v) for k, v in value.items()}


StringMap = Annotated[dict[str, str], BeforeValidator(_string_map)]

LABELS_ALLOWED = ("Kubernetes labels: each key an optional DNS-subdomain prefix and '/', then a name of at most 63 "
                  "letters, digits, '-', '_' and '.' starting and ending with a letter or digit; each value empty or "
                  "such a name")


def _label_map(value: Any) -> dict[str, str]:
    labels = _string_map(value)
    for key, label in labels.items():
        if not is_label_key(key) or not is_label_value(label):
            raise problem(f"must be {LABELS_ALLOWED}, got {show(key)}: {show(label)}")
    return labels


LabelMap = Annotated[dict[str, str], BeforeValidator(_label_map)]
"""Kubernetes labels or a label selector (``matchLabels``, ``nodeSelector``): the API server refuses an invalid
key or value only at ``up``."""


# --- sections -----------------------------------------------------------------------------


class Section(BaseModel):
    """One config object: camelCase keys, unknown keys rejected, immutable once validated."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
                              protected_namespaces=(), use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise problem(f"must be an object, got {show(data)}")
        return data

    @classmethod
    def keys(cls) -> list[str]:
        """The config keys of this section (aliases), sorted."""
        return sorted(f.alias or name for name, f in cls.model_fields.items())


def given(data: Mapping[str, Any], key: str) -> bool:
    """Whether raw section ``data`` sets ``key`` (None counts as unset, as in stack files)."""
    return isinstance(data, Mapping) and data.get(key) is not None


# --- errors ------------------------------------------------------------------------------


def config_key(loc: Iterable[str | int]) -> str:
    """``('gpu', 'nodePools', 0, 'name')`` -> ``gpu.nodePools[0].name``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _section_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[Section] | None:
    """The section class that holds ``loc`` (for the keys an unknown key is compared with)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        current = field.annotation
        while typing.get_origin(current) is not None:  # Optional[X], tuple[X, ...]
            current = next((a for a in typing.get_args(current) if isinstance(a, type)
                            and issubclass(a, BaseModel)), None)
    return current if isinstance(current, type) and issubclass(current, Section) else None


def config_error(err: ValidationError, model: type[BaseModel]) -> ConfigError:
    """The first of pydantic's errors, in the project's words."""
    first = err.errors()[0]
    loc = [p for p in first["loc"] if isinstance(p, str | int)]
    kind = first["type"]
    if kind == "config":
        at = first["ctx"]["at"]
        return ConfigError(config_key([*loc, at] if at else loc), first["ctx"]["message"])
    if kind == "extra_forbidden":
        section = _section_at(model, loc[:-1])
        known = ", ".join(section.keys()) if section is not None else ""
        return ConfigError(config_key(loc), f"is not a known setting (known here: {known})")
    if kind == "missing":
        return ConfigError(config_key(loc), "is required")
    return ConfigError(config_key(loc), f"is invalid: {first['msg']}, got {show(first.get('input'))}")


def validate(model: type[BaseModel], raw: Any, *, context: Mapping[str, Any] | None = None) -> Any:
    """``model`` validated from raw config; a :class:`ConfigError` naming the first bad key."""
    try:
        return model.model_validate(raw, context=dict(context or {}))
    except ValidationError as err:
        raise config_error(err, model) from None


class Amounts(Section):
    """CPU and memory of a container's requests or limits."""

    cpu: Quantity
    """CPU, a Kubernetes quantity such as 500m or 2"""
    memory: Quantity
    """Memory, a Kubernetes quantity such as 1Gi"""


class Resources(Section):
    """CPU and memory requests and limits of a container."""

    requests: Amounts
    limits: Amounts

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        # The API server rejects a container whose request exceeds its limit, i.e. only at `up`.
        for resource in ("cpu", "memory"):
            request, limit = getattr(self.requests, resource), getattr(self.limits, resource)
            if quantity_value(request) > quantity_value(limit):
                raise problem(f"must be at most limits.{resource} ({show(limit)}): a container cannot request more "
                              f"than its limit, got {show(request)}", at=f"requests.{resource}")
        return self

    def to_k8s(self, extra_limits: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
        limits = {"cpu": self.limits.cpu, "memory": self.limits.memory, **(extra_limits or {})}
        return {"requests": {"cpu": self.requests.cpu, "memory": self.requests.memory}, "limits": limits}


def resources(*, requests: tuple[str, str], limits: tuple[str, str]) -> tuple[BeforeValidator, Resources]:
    """The rule of a ``resources`` field whose unset parts fall back to these defaults
    (``Annotated[Resources, rule]``), and its default."""
    default = Resources(requests=Amounts(cpu=requests[0], memory=requests[1]),
                        limits=Amounts(cpu=limits[0], memory=limits[1]))
    plain = default.model_dump()

    def merge(value: Any) -> Any:
        if value is None:
            return plain
        if not isinstance(value, Mapping):
            return value  # fails as "must be an object"
        return {**plain, **{k: ({**plain[k], **v} if k in plain and isinstance(v, Mapping) else v)
                            for k, v in value.items()}}
    return BeforeValidator(merge), default
