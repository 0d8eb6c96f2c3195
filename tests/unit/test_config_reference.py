"""Pulumi.yaml's config block and the README's configuration reference are generated from the settings
schema (``python -m stacks.config_docs``), and are current."""

from __future__ import annotations

import yaml

from stacks import config_docs
from stacks.settings import TOP_LEVEL_KEYS, parse_settings
from tests.harness import ROOT

PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
HOW = "regenerate with `python -m stacks.config_docs` (the schema in stacks/*settings.py is the source)"


def test_pulumi_yaml_declares_exactly_what_the_schema_generates() -> None:
    assert PROJECT["config"] == config_docs.pulumi_config(), HOW


def test_readme_reference_is_what_the_schema_generates() -> None:
    assert (ROOT / "README.md").read_text() == config_docs.rendered_readme(), HOW


def test_every_key_the_loader_reads_is_declared_with_a_type_a_description_and_a_default() -> None:
    decls = PROJECT["config"]
    assert set(decls) == set(TOP_LEVEL_KEYS) - {"aws"}  # aws is read only to say it is not used
    for name, decl in decls.items():
        assert decl["description"], f"{name} has no description"
        assert decl["type"] == ("object" if isinstance(decl["default"], dict) else "string"), name


def test_the_declared_defaults_load_as_the_schemas_defaults() -> None:
    """Loading the declared defaults gives exactly what loading nothing gives."""
    # Models the default smoke.cases name (a model no case file names is refused).
    models = {"stable": {"id": "google/flan-t5-small", "revision": "1" * 40},
              "canary": {"id": "google/flan-t5-base", "revision": "2" * 40}}
    defaults = {name: decl["default"] for name, decl in PROJECT["config"].items() if name != "models"}
    assert parse_settings({**defaults, "models": models}) == parse_settings({"models": models})


def test_every_documented_key_has_a_meaning() -> None:
    rows = config_docs.readme_rows()
    assert len(rows) > 60
    assert all(meaning for _, _, meaning in rows), [key for key, _, meaning in rows if not meaning]


def test_shipped_stack_files_are_in_the_style_pulumi_writes_them() -> None:
    """`pulumi stack init` (the first `make up`) rewrites Pulumi.<stack>.yaml with its YAML encoder, which puts
    one space before an end-of-line comment; a file written so sees only its encryptionsalt line added, not
    unrelated lines move in the reviewer's diff."""
    import re

    from tests.harness import ROOT

    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not re.search(r"\S {2,}#", line), f"{path.name}:{number}: one space before '#': {line!r}"
