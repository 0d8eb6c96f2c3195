"""Kubernetes resource quantities as exact numbers (pure): the one parser of the settings' checks
(stacks/config_types.py: a request above its limit, a zero size) and of the deploy driver's
comparison with the deployed weights claim (deploy/volume.py)."""

from __future__ import annotations

import math
import re
from fractions import Fraction

_SUFFIX_FACTORS: dict[str, Fraction] = {
    "": Fraction(1), "m": Fraction(1, 1000),
    **{s: Fraction(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
    **{s: Fraction(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?")


def quantity_value(text: str) -> Fraction:
    """The exact amount a quantity stands for, in Kubernetes' grammar (``"500m"`` -> 1/2, ``"1Ki"`` -> 1024,
    ``"20Gi"``, ``"1e3"``); ValueError for anything else."""
    match = _QUANTITY.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, exponent, suffix = match.groups()
    scale = Fraction(10) ** int(exponent) if exponent else _SUFFIX_FACTORS[suffix or ""]
    return Fraction(number) * scale


_BINARY = tuple((s, Fraction(1024) ** n) for s, n in (("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)))


def binary_quantity(value: Fraction) -> str:
    """A byte amount as the largest binary suffix that writes it whole (``11Gi``, ``11520Mi``); bytes
    rounded up otherwise."""
    for suffix, factor in _BINARY:
        if value % factor == 0 and value >= factor:
            return f"{value // factor}{suffix}"
    return str(math.ceil(value))
