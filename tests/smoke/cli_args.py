"""What the smoke tests pass to the CLI and read back from its JSON report."""

from __future__ import annotations

import json
from typing import Any


def identity(variant: str, repo: str, weights: str) -> tuple[str, ...]:
    """The flags the smoke gate passes for a variant: repo id, revision (the path's last part), weights path."""
    return (f"--{variant}-model", repo, f"--{variant}-revision", weights.rsplit("/", 1)[-1],
            f"--{variant}-weights", weights)


def checks_of(stdout: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The ``--json`` report's checks by (target, name)."""
    report = json.loads(stdout)
    return {(c["target"], c["name"]): c for c in report["checks"]}
