"""The package's shape: exact pins for every third-party import, no Pulumi import, wired into requirements-dev."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from tests.smoke.servers import REPO_ROOT

PACKAGE = REPO_ROOT / "analysis"
DISTRIBUTION = {"prometheus_client": "prometheus-client", "yaml": "pyyaml"}
"""Import name -> distribution name, where they differ."""


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pins.update(_pins((path.parent / line[3:].strip()).resolve()))
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([0-9][0-9A-Za-z.\-+]*)", line)
        assert match, f"{path}: {raw!r} is not an exact pin (name==version)"
        pins[re.sub(r"\[.*\]", "", match.group(1)).lower()] = match.group(2)
    return pins


def _third_party_imports() -> dict[str, str]:
    found: dict[str, str] = {}
    for source in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("analysis", "smoke"):
                    found.setdefault(top, source.name)
    return found


def test_every_third_party_import_is_pinned_exactly() -> None:
    pins = _pins(PACKAGE / "requirements.txt")
    for module, where in _third_party_imports().items():
        name = DISTRIBUTION.get(module, module).lower()
        assert name in pins, f"analysis/{where} imports {module}, which analysis/requirements.txt does not pin"


def test_the_package_imports_no_pulumi_module() -> None:
    assert not any(m.startswith("pulumi") for m in _third_party_imports())


def test_requirements_dev_installs_the_package_requirements() -> None:
    lines = (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r analysis/requirements.txt" in lines
    assert _pins(REPO_ROOT / "requirements-dev.txt")["plotly"] == _pins(PACKAGE / "requirements.txt")["plotly"]
