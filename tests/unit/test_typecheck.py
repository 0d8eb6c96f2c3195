"""The product code passes mypy with the settings in pyproject.toml (pinned in requirements-dev.txt), on every run
of the suite: a call of a property (``settings.replicas_key()``, a TypeError only on the one config that reached
it) or a wrong argument type fails here instead of in someone's `pulumi up`. The tests themselves are not checked.

mypy keeps its cache in ``.mypy_cache`` (git-ignored): the first run on a clone takes a minute or two, later ones
seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT


def mypy(*paths: str | Path) -> subprocess.CompletedProcess[str]:
    """mypy with the project's configuration, on ``paths`` (default: the product code pyproject.toml lists)."""
    return subprocess.run([sys.executable, "-m", "mypy", "--no-color-output", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def test_the_product_code_passes_mypy() -> None:
    proc = mypy()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Success: no issues found"), proc.stdout


def test_mypy_catches_a_property_called_like_a_method(tmp_path: Path) -> None:
    """The bug of issue 22 (stacks/gates.py called ``settings.replicas_key()``), written again."""
    snippet = tmp_path / "called_property.py"
    snippet.write_text("from stacks.settings import Settings\n\n\n"
                       "def why(settings: Settings) -> str:\n    return settings.replicas_key()\n")
    proc = mypy(snippet)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'called_property.py:5: error: "str" not callable  [operator]' in proc.stdout, proc.stdout
