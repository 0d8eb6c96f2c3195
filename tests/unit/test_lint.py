"""The code passes ruff with the rules in pyproject.toml (pinned in requirements-dev.txt), so style and the
unused-argument and import-order checks hold in every change, not only when someone runs the linter."""

from __future__ import annotations

import subprocess
import sys

from tests.harness import ROOT


def test_the_repository_passes_ruff() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
