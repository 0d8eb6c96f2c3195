"""The program rendered under mocks as plain JSON: every resource's type, name, inputs and options,
and the stack outputs, for a few stack configs (``RENDERS``).

``tests/golden/test_render.py`` compares the program with the committed snapshots
(``tests/golden/<render>.json``). Refresh them after an intended change, and review the diff:

    python -m tests.golden.render --write          # rewrite tests/golden/*.json
    python -m tests.golden.render /tmp/renders     # write elsewhere, e.g. to diff two checkouts
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi

from tests.harness import (
    ROOT,
    SECRET_SIG,
    RecordingMocks,
    is_secret,
    mocked_runtime,
    resolve,
    run_main,
    stack_config,
)
from tests.samples import dev_gateway_config  # noqa: E402 - after the harness, which it imports

GOLDEN_DIR = Path(__file__).resolve().parent

WINE_QUALITY = {"repo": "julien-c/wine-quality", "revision": "a" * 40, "file": "sklearn_model.joblib",
                "format": "sklearn"}


def dev_with_modelmesh() -> dict[str, Any]:
    """The dev stack with the ModelMesh track on: primary and candidate, routemap, a V2 smoke case."""
    return {**stack_config("dev"), "llm-ab:modelmesh": {
        "enabled": True, "routemap": True,
        "models": {"primary": {**WINE_QUALITY, "version": "v0"},
                   "candidate": {**WINE_QUALITY, "revision": "b" * 40, "version": "v1"}},
        "smokeCases": ["tests/golden/backend-0.yaml"]}}


def dev_mixed() -> dict[str, Any]:
    """TGI stable against vLLM canary, one model (an engine migration): dev-vllm with the stable on TGI 2.4.1."""
    config = stack_config("dev-vllm")
    qwen = config["llm-ab:models"]["stable"]
    return {**config,
            "llm-ab:models": {"stable": {**qwen, "engine": "tgi"}, "canary": {**qwen, "engine": "vllm"}},
            "llm-ab:tgi": {"image": "ghcr.io/huggingface/text-generation-inference:2.4.1",
                           "maxInputTokens": 1024, "maxTotalTokens": 2048, "maxBatchPrefillTokens": 2048,
                           "dtype": "bfloat16"},
            "llm-ab:smoke": {"cases": ["smoke/cases/dev-vllm/qwen2.5-0.5b-instruct.yaml"]}}


RENDERS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "dev": ("dev", lambda: stack_config("dev")),
    "dev-gateway": ("dev", dev_gateway_config),
    "dev-modelmesh": ("dev", dev_with_modelmesh),
    "staging": ("staging", lambda: stack_config("staging")),
    "dev-vllm": ("dev-vllm", lambda: stack_config("dev-vllm")),
    "dev-mixed": ("dev-vllm", dev_mixed),
}
"""Render name -> (stack name, its config)."""


def _plain(value: Any, names: Mapping[int, str]) -> Any:
    """A resource option (or part of one) as JSON: resources by their logical name."""
    if isinstance(value, pulumi.Resource):
        return names.get(id(value), f"<{type(value).__name__}>")
    if isinstance(value, pulumi.Output):
        return "<output>"
    if isinstance(value, pulumi.CustomTimeouts):
        return {k: v for k, v in {"create": value.create, "update": value.update, "delete": value.delete}.items()
                if v is not None}
    if isinstance(value, pulumi.Alias):
        return {k: _plain(v, names) for k, v in vars(value).items() if v is not None and not k.startswith("_")}
    if isinstance(value, Mapping):
        return {str(k): _plain(v, names) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v, names) for v in value]
    if isinstance(value, pulumi.ResourceHookBinding):
        hooks = {k: len(v) for k, v in vars(value).items() if v}
        return hooks or None  # an empty binding (what ResourceOptions.merge leaves) binds nothing
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return f"<{type(value).__name__}>"


def _options(opts: pulumi.ResourceOptions, names: Mapping[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in sorted(vars(opts).items()):
        if value is None or value == [] or value == {} or key in ("id", "urn"):
            continue
        plain = _plain(value, names)
        if plain is not None:
            out[key] = plain
    if isinstance(out.get("depends_on"), list):
        out["depends_on"] = sorted(out["depends_on"], key=str)
    return out


LONG_TEXT = 400
"""Strings longer than this (shipped source files, scripts) are snapshotted as their size and digest."""


def _inputs(value: Any) -> Any:
    if isinstance(value, str) and len(value) > LONG_TEXT:
        return f"<{len(value)} characters, sha256 {hashlib.sha256(value.encode()).hexdigest()[:16]}>"
    if isinstance(value, Mapping):
        if SECRET_SIG in value:
            return {"<secret>": _inputs(value.get("value"))}
        return {str(k): _inputs(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_inputs(v) for v in value]
    return value


def _output(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        plain = _output(resolve(value))
        return {"<secret>": plain} if is_secret(value) else plain
    if isinstance(value, Mapping):
        return {str(k): _output(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_output(v) for v in value]
    return value


def snapshot(mocks: RecordingMocks, exported: Mapping[str, Any], names: Mapping[int, str]) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for r in mocks.resources:
        assert r.name not in resources, f"two resources named {r.name!r}: the snapshot keys by name"
        resources[r.name] = {
            "type": r.typ,
            "custom": bool(r.custom),
            "provider": r.provider or None,
            "inputs": _inputs(copy.deepcopy(r.inputs)),
            "options": _options(mocks.options.get(r.name, pulumi.ResourceOptions()), names),
        }
    return {"resources": dict(sorted(resources.items())), "outputs": _output(dict(exported))}


def render(name: str) -> dict[str, Any]:
    """Run ``__main__.py`` for render ``name`` under fresh mocks; the snapshot as plain JSON."""
    stack, config = RENDERS[name]
    with mocked_runtime(stack=stack) as mocks:
        exported = run_main(config())
        return snapshot(mocks, exported, mocks.names)


def dump(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", nargs="?", type=Path, help="where to write <render>.json")
    parser.add_argument("--write", action="store_true", help="rewrite the committed snapshots")
    args = parser.parse_args(argv)
    if args.outdir is None and not args.write:
        parser.error("give OUTDIR or --write")
    outdir: Path = GOLDEN_DIR if args.write else args.outdir
    outdir.mkdir(parents=True, exist_ok=True)
    for name in RENDERS:
        (outdir / f"{name}.json").write_text(dump(render(name)))
        print(f"wrote {outdir / name}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
