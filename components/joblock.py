"""What the Jobs pip-install at run time: hash-locked requirement files built for the Job images.

The staging, smoke and analysis Jobs run our packages on a stock ``python:3.11-slim`` image and
install their dependencies from PyPI when they start. Each installs a lock
(``<package>/requirements.lock``): every distribution of the dependency closure ``==``-pinned with
the sha256 of the one wheel pip picks for CPython 3.11 on manylinux x86_64, installed with
``--require-hashes --no-deps --only-binary=:all:`` (:func:`components.podspec.pip_then_python`,
the one install command of every Job), so a changed or substituted file on the index fails the Job instead of
entering the gate or the staging.

The locks are generated from the human-edited pins (``<package>/requirements.txt``, which the dev
venv installs) by ``scripts/lock-requirements`` (``pip download`` for the target below, then the
file's sha256). This module is their one owner: the script writes them, the components ship
them, the tests check them. Pure: no Pulumi, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

JOB_PYTHON = "3.11"
"""The Jobs' Python (the default ``staging.image`` and ``smoke.image`` are ``python:3.11.*-slim``)."""
JOB_ABI = "cp311"
JOB_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux_2_5_x86_64",
    "manylinux1_x86_64", "linux_x86_64",
)
"""Platform tags of the Job images (Debian bookworm: glibc 2.36, x86_64), in pip's order of
preference there, so ``pip download`` picks the wheel the Job's own pip will pick."""

LOCK_NAME = "requirements.lock"
"""File name of a lock, in the repository and in the Jobs' ConfigMaps."""


@dataclass(frozen=True)
class JobLock:
    package: str
    """Our package the Job runs (a directory of the repository)."""

    @property
    def source(self) -> Path:
        """The human-edited pins (may include other files with ``-r``)."""
        return REPO_ROOT / self.package / "requirements.txt"

    @property
    def lock(self) -> Path:
        return REPO_ROOT / self.package / LOCK_NAME


LOCKS = (JobLock("staging"), JobLock("smoke"), JobLock("analysis"))
"""Every lock a Job installs (the analysis Job installs smoke's pins with its own)."""

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")
LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) --hash=sha256:([0-9a-f]{64})$")
WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<python>[^-]+)-(?P<abi>[^-]+)"
                   r"-(?P<platform>[^-]+)\.whl$")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def source_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``==`` pin in a requirements file, following ``-r`` includes."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            pins.update(source_pins((path.parent / line.split(None, 1)[1]).resolve()))
            continue
        match = PIN.match(line)
        if match is None:
            raise ValueError(f"{path}: {raw!r} is not pinned with ==")
        pins[normalize(match.group(1))] = match.group(2)
    return pins


@dataclass(frozen=True)
class LockedPin:
    name: str
    version: str
    sha256: str
    wheel: str
    """The wheel's file name the hash is of (the comment line above the pin)."""


def parse_lock(text: str) -> list[LockedPin]:
    """The pins of a lock; raises ValueError on a line that is not ``name==version --hash=sha256:<hex>``
    preceded by a ``# <wheel file name>`` comment."""
    pins: list[LockedPin] = []
    wheel: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            candidate = line[1:].strip()
            wheel = candidate if candidate.endswith(".whl") else wheel
            continue
        match = LOCK_LINE.match(line)
        if match is None:
            raise ValueError(f"line {number}: {line!r} is not 'name==version --hash=sha256:<64 hex>'")
        if wheel is None:
            raise ValueError(f"line {number}: {line!r} has no '# <wheel file>' comment above it")
        pins.append(LockedPin(normalize(match.group(1)), match.group(2), match.group(3), wheel))
        wheel = None
    return pins


def wheel_tags(filename: str) -> tuple[str, str, str, list[str]]:
    """(name, version, abi, platform tags) of a wheel file name."""
    match = WHEEL.match(filename)
    if match is None:
        raise ValueError(f"{filename!r} is not a wheel file name")
    return (normalize(match.group("name")), match.group("version"), match.group("abi"),
            match.group("platform").split("."))


def wheel_fits_the_jobs(filename: str) -> bool:
    """True when the Job images' pip can install this wheel (pure Python, or CPython 3.11 on one of
    :data:`JOB_PLATFORMS`)."""
    _, _, abi, platforms = wheel_tags(filename)
    python_tags = WHEEL.match(filename).group("python").split(".")  # type: ignore[union-attr]
    if "any" in platforms:
        return abi == "none" and any(t in ("py3", "py2.py3") or t.startswith("py3") for t in python_tags)
    if abi not in (JOB_ABI, "abi3", "none"):
        return False
    if not any(t == JOB_ABI or (abi == "abi3" and t.startswith("cp3") and int(t[3:]) <= 11) for t in python_tags):
        return False
    return any(p in JOB_PLATFORMS for p in platforms)

