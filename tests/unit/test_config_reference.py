"""Pulumi.yaml, the Settings defaults and the README's config reference say the same thing."""

from __future__ import annotations

import re
from typing import Any

import yaml

from stacks.settings import TOP_LEVEL_KEYS, parse_settings
from tests.harness import ROOT

PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else k, v))
        return out
    return {prefix: value}


def declared_keys() -> dict[str, Any]:
    return {name: decl for name, decl in PROJECT["config"].items()}


def test_every_key_the_loader_reads_is_declared_with_a_description_and_default() -> None:
    decls = declared_keys()
    core = [k for k in TOP_LEVEL_KEYS if k in decls]
    assert set(decls) <= set(TOP_LEVEL_KEYS), set(decls) - set(TOP_LEVEL_KEYS)
    assert {"namespace", "platform", "split", "models", "tgi", "storage", "datashim", "smoke"} <= set(core)
    for name, decl in decls.items():
        assert decl.get("description"), f"{name} has no description"
        assert "default" in decl, f"{name} has no default"
        expected = "object" if isinstance(decl["default"], dict) else ("array" if isinstance(decl["default"], list)
                                                                       else None)
        assert decl.get("type") in ((expected,) if expected else ("string", "integer", "boolean")), (
            f"{name} is declared with type {decl.get('type')!r}")


def test_pulumi_yaml_defaults_are_the_settings_defaults() -> None:
    """Loading the declared defaults gives exactly what loading nothing gives."""
    models = {"stable": {"id": "a/b", "revision": "1" * 40}, "canary": {"id": "a/c", "revision": "2" * 40}}
    defaults = {name: decl["default"] for name, decl in declared_keys().items() if name != "models"}
    from_yaml = parse_settings({**defaults, "models": models})
    from_code = parse_settings({"models": models})
    assert from_yaml == from_code


def readme_keys() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z0-9.]+)`", section, flags=re.M))


def test_readme_documents_every_declared_key_and_nothing_else() -> None:
    documented = readme_keys()
    declared: set[str] = set()
    for name, decl in declared_keys().items():
        default = decl["default"]
        if isinstance(default, dict) and default:
            declared |= {k for k in flatten(name, default) if not k.startswith(("tgi.resources.",))}
            if name == "tgi":
                declared |= {"tgi.resources"}
        else:
            declared.add(name)
    declared |= {"models.stable.id", "models.stable.revision", "models.stable.path",
                 "models.canary.id", "models.canary.revision", "models.canary.path"}
    declared.discard("models")
    assert documented == declared, (
        f"README lacks {sorted(declared - documented)}; README has undeclared {sorted(documented - declared)}")
