"""A hostile probe of the settings schema: every leaf key of the dev, gateway, ModelMesh and eks-shaped configs
gets a battery of bad values; each outcome is counted as

- refused clearly: a ConfigError that names the key (as the stack file spells it) and the value;
- refused vaguely: a ConfigError that misses one of them;
- traceback: any other exception;
- accepted: no error (fine for a value the key allows; listed so a person can judge them).

Run: ``venv/bin/python bench/probe_config.py [--show-accepted]``. Pure: no Pulumi, no cluster, no network.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stacks.config_types import ConfigError  # noqa: E402
from stacks.settings import parse_settings  # noqa: E402
from tests.golden.render import dev_gateway_config, dev_with_modelmesh  # noqa: E402
from tests.harness import raw_config, stack_config  # noqa: E402

BAD_VALUES: list[Any] = [
    None, "", " ", "inf", float("inf"), float("nan"), -1, 0, 10**40, -(10**40), 1.5, True, "true", "yes",
    [], {}, [1], {"a": 1}, "x" * 300, "Fast_SSD", "a..b", "127.0.0.1", "ünïcode", "line\nbreak", "../etc",
    "UPPER", "-leading", "1000Pi", "latest", "repo:latest",
]


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from leaves(sub, (*path, key))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        yield from leaves(value[0], (*path, "0"))
    else:
        yield path


def with_leaf(config: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(config)
    node: Any = out
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--show-accepted", action="store_true")
    opts = parser.parse_args()
    configs = {"dev": stack_config("dev"), "dev-gateway": dev_gateway_config(), "dev-modelmesh": dev_with_modelmesh(),
               "staging": stack_config("staging")}
    counts: Counter[str] = Counter()
    tracebacks: list[str] = []
    vague: list[str] = []
    accepted: list[str] = []
    tried: set[tuple[str, ...]] = set()
    for name, config in configs.items():
        for path in leaves(config):
            if path in tried:
                continue
            tried.add(path)
            key = ".".join(p for p in path[1:])
            for value in BAD_VALUES:
                raw = raw_config(with_leaf(config, path, value))
                try:
                    parse_settings(raw, stack=name.split("-")[0])
                except ConfigError as err:
                    text = str(err)
                    last = path[-1] if not path[-1].isdigit() else path[-2]
                    if last.split(":")[-1] in text:
                        counts["refused clearly"] += 1
                    else:
                        counts["refused vaguely"] += 1
                        vague.append(f"{name}: {key} = {value!r}: {text[:160]}")
                except Exception as err:  # noqa: BLE001 - counting them is the point
                    counts["traceback"] += 1
                    tracebacks.append(f"{name}: {key} = {value!r}: {type(err).__name__}: {err}"[:240])
                else:
                    counts["accepted"] += 1
                    accepted.append(f"{name}: {key} = {value!r}")
    total = sum(counts.values())
    print(f"{len(tried)} keys x {len(BAD_VALUES)} hostile values = {total} tries")
    for outcome in ("refused clearly", "refused vaguely", "traceback", "accepted"):
        print(f"  {outcome:<16} {counts[outcome]:>6}  ({100 * counts[outcome] / total:.1f} %)")
    for title, rows in (("tracebacks", tracebacks), ("vague", vague[:15])):
        if rows:
            print(f"{title}:")
            for row in rows:
                print("  " + row)
    if opts.show_accepted:
        print("accepted:")
        for row in accepted:
            print("  " + row)
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
