"""Promotion and rollback by config: one edit of ``Pulumi.<stack>.yaml``, reviewed as a preview diff.

    python -m stacks.promote promote|rollback --stack dev [--track serving|modelmesh|all] [--dry-run]

=========  ============================================  ==========================================
track      promote                                       rollback
=========  ============================================  ==========================================
serving    ``models.stable := models.canary``: the       ``split.canaryPercent := 0``: every
           stable Deployment serves the canary's model   replica is stable, the canary scales to 0
           (and engine, TGI or vLLM)
modelmesh  ``models.primary := models.candidate``, then  ``models.candidate`` removed: ``<app>-1``
           ``models.candidate`` removed: ``<app>-0``     is deleted, ``<app>-0`` is untouched
           serves the candidate's model and version,
           ``<app>-1`` is deleted
=========  ============================================  ==========================================

``all`` (the default) applies every track that has something to do; ``tgi`` is the serving track's name
from before vLLM, still accepted. Nothing is deployed: review the
change with ``make preview`` and apply it with ``make up``. The file is edited with ruamel.yaml,
which keeps comments, key order and quoting (PyYAML would drop every comment); the new config is
validated with the program's own settings loader before the file is written.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks.config_types import PROJECT, ConfigError

ROOT = Path(__file__).resolve().parent.parent
ACTIONS = ("promote", "rollback")
TRACKS = ("serving", "modelmesh")
TRACK_ALIASES = {"tgi": "serving"}
"""Track names from before vLLM joined TGI."""

MODELS = f"{PROJECT}:models"
SPLIT = f"{PROJECT}:split"
MODELMESH = f"{PROJECT}:modelmesh"


def rollback_command(stack: str) -> str:
    """What the smoke gate prints when it fails: every request to stable, the ModelMesh candidate removed."""
    return f"make rollback STACK={stack} && make up STACK={stack}"


class PromotionError(Exception):
    """The requested change does not apply to this stack's config; the message says why."""


@dataclass(frozen=True)
class Change:
    """One config key the command changed."""

    key: str
    before: Any
    after: Any

    def describe(self) -> str:
        return f"{self.key}: {_show(self.before)} -> {_show(self.after)}"


def _plain(value: Any) -> Any:
    """A ruamel node as plain Python (for comparisons and messages)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, Mapping):
        ident = value.get("id") or value.get("repo")
        if ident and value.get("revision"):
            return f"{ident}@{str(value['revision'])[:7]}"
    return repr(_plain(value))


def _replace_in_place(target: MutableMapping[str, Any], source: Mapping[str, Any]) -> None:
    """Make ``target`` equal ``source`` key by key, so comments around ``target`` survive."""
    for key in [k for k in target if k not in source]:
        del target[key]
    for key, value in source.items():
        target[key] = copy.deepcopy(value)


def _object(config: Mapping[str, Any], key: str) -> MutableMapping[str, Any] | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, MutableMapping):
        raise PromotionError(f"{key} must be an object in the stack file, got {value!r}")
    return value


def promote_serving(config: MutableMapping[str, Any]) -> list[Change]:
    """``models.stable := models.canary``."""
    models = _object(config, MODELS)
    if models is None or not isinstance(models.get("canary"), Mapping) or not isinstance(models.get("stable"), Mapping):
        raise PromotionError(f"{MODELS} must set stable and canary to promote the canary")
    if _plain(models["stable"]) == _plain(models["canary"]):
        return []
    before = _plain(models["stable"])
    _replace_in_place(models["stable"], models["canary"])
    return [Change(f"{MODELS}.stable", before, _plain(models["stable"]))]


def rollback_serving(config: MutableMapping[str, Any]) -> list[Change]:
    """``split.canaryPercent := 0``."""
    split = _object(config, SPLIT)
    if split is None:
        config[SPLIT] = split = {}
    before = split.get("canaryPercent")
    if before is not None and float(before) == 0:
        return []
    split["canaryPercent"] = 0
    return [Change(f"{SPLIT}.canaryPercent", 50 if before is None else before, 0)]


def _mesh_models(config: Mapping[str, Any]) -> MutableMapping[str, Any]:
    mesh = _object(config, MODELMESH)
    models = mesh.get("models") if mesh is not None else None
    if not isinstance(models, MutableMapping) or not isinstance(models.get("candidate"), Mapping):
        raise PromotionError(f"{MODELMESH}.models.candidate is not set: there is no candidate")
    if not isinstance(models.get("primary"), MutableMapping):
        raise PromotionError(f"{MODELMESH}.models.primary must be set")
    return models


def promote_modelmesh(config: MutableMapping[str, Any]) -> list[Change]:
    """``models.primary := models.candidate``; the candidate is removed."""
    models = _mesh_models(config)
    before_primary, candidate = _plain(models["primary"]), _plain(models["candidate"])
    _replace_in_place(models["primary"], models["candidate"])
    del models["candidate"]
    key = f"{MODELMESH}.models"
    changes = [Change(f"{key}.candidate", candidate, None)]
    if before_primary != candidate:
        changes.insert(0, Change(f"{key}.primary", before_primary, _plain(models["primary"])))
    return changes


def rollback_modelmesh(config: MutableMapping[str, Any]) -> list[Change]:
    """The candidate is removed; the primary is untouched."""
    models = _mesh_models(config)
    candidate = _plain(models.pop("candidate"))
    return [Change(f"{MODELMESH}.models.candidate", candidate, None)]


EDITS: dict[tuple[str, str], Callable[[MutableMapping[str, Any]], list[Change]]] = {
    ("promote", "serving"): promote_serving,
    ("rollback", "serving"): rollback_serving,
    ("promote", "modelmesh"): promote_modelmesh,
    ("rollback", "modelmesh"): rollback_modelmesh,
}


def modelmesh_enabled(config: Mapping[str, Any]) -> bool:
    mesh = config.get(MODELMESH)
    return isinstance(mesh, Mapping) and str(mesh.get("enabled", False)).lower() == "true"


def apply(config: MutableMapping[str, Any], action: str, track: str = "all") -> tuple[list[Change], list[str]]:
    """Edit ``config`` (the stack file's ``config:`` mapping) in place.

    Returns the changes and notes about tracks that had nothing to do. ``track="all"`` skips the
    ModelMesh track when it is disabled or has no candidate; a named track that does not apply
    raises :class:`PromotionError`.
    """
    track = TRACK_ALIASES.get(track, track)
    tracks = TRACKS if track == "all" else (track,)
    changes: list[Change] = []
    notes: list[str] = []
    for name in tracks:
        if track == "all" and name == "modelmesh" and not modelmesh_enabled(config):
            notes.append("modelmesh: not enabled, skipped")
            continue
        try:
            done = EDITS[(action, name)](config)
        except PromotionError as err:
            if track != "all":
                raise
            notes.append(f"{name}: {err}, skipped")
            continue
        if not done:
            notes.append(f"{name}: nothing to change")
        changes += done
    return changes, notes


def validate(config: Mapping[str, Any], stack: str) -> None:
    """Run the program's settings loader over the edited config (raises ConfigError)."""
    from stacks.settings import parse_settings

    prefix = f"{PROJECT}:"
    raw = {key[len(prefix):]: _plain(value) for key, value in config.items() if str(key).startswith(prefix)}
    parse_settings(raw, stack=stack)


def _yaml() -> Any:
    try:
        from ruamel.yaml import YAML
    except ImportError:  # pragma: no cover - pinned in requirements-dev.txt
        raise PromotionError("ruamel.yaml is needed to edit the stack file without losing its comments: "
                             "pip install -r requirements-dev.txt (or `make venv`)") from None
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long values
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def edit_stack_file(path: Path, action: str, track: str = "all", *, stack: str = "dev",
                    dry_run: bool = False) -> tuple[list[Change], list[str]]:
    """Apply ``action`` to the stack file at ``path``; write it back unless ``dry_run`` or unchanged."""
    yaml = _yaml()
    document = yaml.load(path.read_text())
    config = document.get("config") if isinstance(document, MutableMapping) else None
    if not isinstance(config, MutableMapping):
        raise PromotionError(f"{path} has no config: mapping")
    changes, notes = apply(config, action, track)
    if changes:
        validate(config, stack)
        if not dry_run:
            with path.open("w") as out:
                yaml.dump(document, out)
    return changes, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.promote",
        description="Promote the candidate or roll it back by editing Pulumi.<stack>.yaml; review with `make preview`.",
    )
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("--stack", default="dev", help="stack name (edits Pulumi.<stack>.yaml; default dev)")
    parser.add_argument("--track", choices=(*TRACKS, *TRACK_ALIASES, "all"), default="all",
                        help="which A/B pair: serving (TGI/vLLM), modelmesh or all (default all)")
    parser.add_argument("--file", type=Path, help="stack file to edit (default: Pulumi.<stack>.yaml in the project)")
    parser.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    args = parser.parse_args(argv)

    path = args.file or ROOT / f"Pulumi.{args.stack}.yaml"
    if not path.is_file():
        print(f"promote: error: {path} does not exist", file=sys.stderr)
        return 2
    try:
        changes, notes = edit_stack_file(path, args.action, args.track, stack=args.stack, dry_run=args.dry_run)
    except PromotionError as err:
        print(f"promote: error: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"promote: error: the {args.action} would leave an invalid config, nothing written: {err}",
              file=sys.stderr)
        return 2
    for note in notes:
        print(f"promote: {note}", file=sys.stderr)
    if not changes:
        print(f"promote: {path.name} already has nothing to {args.action}")
        return 0
    for change in changes:
        print(change.describe())
    if args.dry_run:
        print(f"(dry run: {path.name} not written)")
    else:
        print(f"wrote {path.name}; review with `make preview STACK={args.stack}`, "
              f"apply with `make up STACK={args.stack}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
