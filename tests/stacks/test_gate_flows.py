"""`make promote && make up` and `make rollback && make up` pass their own gate.

Each flow edits the dev config as ``python -m stacks.promote`` does, renders the whole program under
mocks, and then runs the smoke CLI with exactly the arguments and case files of the rendered smoke
Job against loopback servers that serve what the rendered Deployments are given (their
``MODEL_ID``, through a per-connection split proxy at their replica shares), the way the Job runs
in the cluster.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from smoke.cli import main as smoke_main
from stacks import promote
from tests.samples import CANDIDATE, PRIMARY, dev_config
from tests.smoke.servers import BASE_ANSWERS, SMALL_ANSWERS, RunningServer, SplitProxy, start_tgi, start_v2
from tests.stacks.test_promotion import record

Run = Mapping[str, tuple[str, Any]]
ANSWERS = {"flan-t5-small": SMALL_ANSWERS, "flan-t5-base": BASE_ANSWERS}
WINE_OUTPUT = [{"name": "predict", "shape": [1, 1], "datatype": "INT64", "data": [5]}]
CASES_MOUNT = "/opt/smoke-cases"


def edited(config: dict[str, Any], *steps: str) -> dict[str, Any]:
    out = copy.deepcopy(config)
    for action in steps:
        promote.apply(out, action)
    return out


def container(run: Run, name: str) -> Mapping[str, Any]:
    return run[name][1]["spec"]["template"]["spec"]["containers"][0]


def model_id(run: Run, variant: str) -> str:
    env = container(run, f"tgi-{variant}-deploy")["env"]
    return next(e["value"] for e in env if e["name"] == "MODEL_ID")


def replicas(run: Run, variant: str) -> int:
    return int(run[f"tgi-{variant}-deploy"][1]["spec"]["replicas"])


@pytest.fixture
def servers() -> Iterator[list[Callable[[], None]]]:
    stops: list[Callable[[], None]] = []
    yield stops
    for stop in reversed(stops):
        stop()


def run_gate(run: Run, stops: list[Callable[[], None]], tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    """The rendered smoke Job's CLI run against loopback stand-ins of what the render serves."""
    variants: dict[str, RunningServer] = {}
    for variant in ("stable", "canary"):
        served = model_id(run, variant)
        answers = next(a for name, a in ANSWERS.items() if f"/{name}/" in served)
        variants[variant] = start_tgi(served, stops, answers=dict(answers))
    total = replicas(run, "stable") + replicas(run, "canary")
    proxy = SplitProxy(variants["stable"].address, variants["canary"].address,
                       share=replicas(run, "canary") / total, seed=3)
    stops.append(proxy.close)
    v2 = start_v2({"backend-0": WINE_OUTPUT, "backend-1": WINE_OUTPUT}, stops)
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir(exist_ok=True)
    for name, text in run["smoke-cases"][1]["data"].items():
        (cases_dir / name).write_text(text)

    local = {"--tgi-url": proxy.url, "--stable-url": variants["stable"].url,
             "--canary-url": variants["canary"].url, "--v2-url": v2.url}
    argv = list(container(run, "smoke-job")["args"])
    for i, arg in enumerate(argv[:-1]):
        if arg in local:
            argv[i + 1] = local[arg]
        elif arg == "--cases":
            argv[i + 1] = argv[i + 1].replace(CASES_MOUNT, str(cases_dir))
    code = smoke_main([*argv, "--json"])
    report = json.loads(capsys.readouterr().out)
    return code, report


def statuses(report: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    return {(c["target"], c["name"]): c["status"] for c in report["checks"]}


def test_dev_as_deployed_passes_its_gate(servers, tmp_path, capsys) -> None:
    code, report = run_gate(record(dev_config()), servers, tmp_path, capsys)

    assert code == 0, report["checks"]
    checks = statuses(report)
    assert checks[("traffic", "split")] == "pass"
    assert checks[("stable", "case square-root")] == checks[("canary", "case square-root")] == "pass"


def test_make_promote_then_make_up_passes_with_inference_on_both_and_no_split(servers, tmp_path, capsys) -> None:
    promoted = record(edited(dev_config(), "promote"))
    assert model_id(promoted, "stable") == model_id(promoted, "canary")  # both serve flan-t5-base now

    code, report = run_gate(promoted, servers, tmp_path, capsys)

    assert code == 0, report["checks"]
    checks = statuses(report)
    for variant in ("stable", "canary"):
        assert checks[(variant, "model")] == "pass"
        assert checks[(variant, "case square-root")] == "pass"  # the flan-t5-base cases, on both
    assert checks[("traffic", "split")] == "skip"
    split = next(c for c in report["checks"] if c["name"] == "split")
    assert "both serve google/flan-t5-base@7bcac57" in split["detail"]


@pytest.mark.parametrize("steps", [("rollback",), ("promote", "rollback")])
def test_make_rollback_then_make_up_passes(steps, servers, tmp_path, capsys) -> None:
    rolled_back = record(edited(dev_config(), *steps))
    assert replicas(rolled_back, "canary") == 0

    code, report = run_gate(rolled_back, servers, tmp_path, capsys)

    assert code == 0, report["checks"]
    checks = statuses(report)
    assert not [key for key in checks if key[0] == "canary"]  # no canary replicas: not probed directly
    assert checks[("stable", "case square-root")] == "pass"
    assert checks[("traffic", "split")] == "pass" and report["split"]["canary"] == 0


@pytest.fixture
def mesh_config() -> dict[str, Any]:
    return {**dev_config(), "llm-ab:modelmesh": {
        "enabled": True, "models": {"primary": {**PRIMARY, "version": "v0"}, "candidate": CANDIDATE},
        "smokeCases": ["tests/golden/backend-0.yaml"]}}


@pytest.mark.parametrize("steps", [(), ("promote",), ("rollback",)])
def test_the_modelmesh_flows_pass_and_check_every_inference_service(steps, mesh_config, servers, tmp_path,
                                                                    capsys) -> None:
    run = record(edited(mesh_config, *steps))

    code, report = run_gate(run, servers, tmp_path, capsys)

    assert code == 0, report["checks"]
    checks = statuses(report)
    assert checks[("v2 backend-0", "infer red-wine-row-1")] == "pass"
    if not steps:  # with a candidate, it is inferred too
        assert checks[("v2 backend-1", "infer red-wine-row-1")] == "pass"
    else:  # promote and rollback both remove the candidate
        assert ("v2 backend-1", "infer red-wine-row-1") not in checks
