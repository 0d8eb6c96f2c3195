"""``python -m stacks.analyze --stack dev --stable-url URL --canary-url URL``: the analysis CLI's arguments
for a run from outside the cluster (``scripts/analyze``, ``make analyze``), one per line.

They are the in-cluster gate's (:func:`stacks.gates.analysis_plan` over ``Pulumi.<stack>.yaml``'s
settings) with local URLs: the same load, bounds, case files and thresholds, so the run decides as the
gate would. A bad stack file fails with the settings loader's message, naming the key (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from stacks.config_types import PROJECT, ConfigError
from stacks.gates import local_analysis_argv
from stacks.settings import REPO_ROOT, Settings, parse_settings


def stack_settings(stack: str, root: Path = REPO_ROOT) -> Settings:
    """The validated settings of ``Pulumi.<stack>.yaml`` (keys without the project prefix)."""
    path = root / f"Pulumi.{stack}.yaml"
    document: Any = yaml.safe_load(path.read_text()) if path.is_file() else {}
    config = (document or {}).get("config") or {}
    prefix = f"{PROJECT}:"
    raw = {key[len(prefix):]: value for key, value in config.items() if str(key).startswith(prefix)}
    return parse_settings(raw, stack=stack)


def main(argv: Sequence[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.analyze", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--stable-url", required=True)
    parser.add_argument("--canary-url", required=True)
    args = parser.parse_args(argv)
    try:
        settings = stack_settings(args.stack, root)
    except ConfigError as err:
        print(f"{parser.prog}: invalid stack config: {err}", file=sys.stderr)
        return 2
    print("\n".join(local_analysis_argv(settings, args.stable_url, args.canary_url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
