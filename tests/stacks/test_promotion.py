"""Promotion and rollback by config, proved as preview diffs: the whole program runs under mocks
before and after each edit of the stack config, and only the expected resources change.

The edits are the ones ``python -m stacks.promote`` makes (:func:`stacks.promote.apply`); the
ModelMesh track is enabled on top of the dev stack's config.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest

from stacks import promote
from tests.harness import mocked_runtime, run_main
from tests.samples import CANDIDATE, PRIMARY, REV_A, REV_B, dev_config

ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"

# --- the diff helper ---------------------------------------------------------------------


@dataclass
class PreviewDiff:
    """What a preview would show between two runs: resources added, removed and changed (by leaf path)."""

    added: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    changed: dict[str, set[str]] = field(default_factory=dict)


def _key(item: Any, index: int) -> str:
    """List items that carry a ``name`` (containers, env vars, ports) are addressed by it."""
    return str(item["name"]) if isinstance(item, Mapping) and "name" in item else str(index)


def leaf_changes(before: Any, after: Any, path: str = "") -> set[str]:
    """Paths of the leaves that differ, e.g. ``spec.template.spec.containers[tgi].env[MODEL_ID].value``.

    A list of scalars (container args) that differs is reported as the list itself.
    """
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        out: set[str] = set()
        for key in set(before) | set(after):
            out |= leaf_changes(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(before, list) and isinstance(after, list) and any(isinstance(x, Mapping) for x in before + after):
        keyed_before = {_key(x, i): x for i, x in enumerate(before)}
        keyed_after = {_key(x, i): x for i, x in enumerate(after)}
        out = set()
        for key in set(keyed_before) | set(keyed_after):
            out |= leaf_changes(keyed_before.get(key), keyed_after.get(key), f"{path}[{key}]")
        return out
    return set() if before == after else {path}


def preview_diff(before: Mapping[str, Any], after: Mapping[str, Any], *, ignore: tuple[str, ...] = ()) -> PreviewDiff:
    """Compare two runs' registrations (name -> (type, inputs)); names starting with ``ignore`` are skipped."""
    def keep(name: str) -> bool:
        return not name.startswith(ignore) if ignore else True

    diff = PreviewDiff(added={n for n in set(after) - set(before) if keep(n)},
                       removed={n for n in set(before) - set(after) if keep(n)})
    for name in set(before) & set(after):
        if not keep(name):
            continue
        (typ_a, inputs_a), (typ_b, inputs_b) = before[name], after[name]
        paths = leaf_changes(inputs_a, inputs_b) | ({"<type>"} if typ_a != typ_b else set())
        if paths:
            diff.changed[name] = paths
    return diff


def test_the_diff_helper_names_changed_leaves_by_path() -> None:
    a = {"x": ("t", {"spec": {"replicas": 1, "c": [{"name": "tgi", "env": [{"name": "A", "value": "1"}],
                                                     "args": ["--a", "1"]}]}})}
    b = {"x": ("t", {"spec": {"replicas": 2, "c": [{"name": "tgi", "env": [{"name": "A", "value": "2"}],
                                                     "args": ["--a", "2"]}]}}), "y": ("t", {})}
    diff = preview_diff(a, b)
    assert diff.added == {"y"} and diff.removed == set()
    assert diff.changed == {"x": {"spec.replicas", "spec.c[tgi].env[A].value", "spec.c[tgi].args"}}


# --- running the program ----------------------------------------------------------------

SMOKE = ("smoke",)
"""The smoke gate's Job carries the models and the split in its arguments, so it changes (and re-runs)
with every promotion; it is left out of the serving diffs below."""

_RUNS: dict[str, dict[str, tuple[str, Any]]] = {}


def record(config: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Run ``__main__.py`` with ``config`` under fresh mocks; registrations by name (cached per config)."""
    key = json.dumps(config, sort_keys=True, default=str)
    if key not in _RUNS:
        with mocked_runtime() as mocks:
            run_main(config)
        names = [r.name for r in mocks.resources]
        assert len(names) == len(set(names)), "resource names must be unique for the diff"
        _RUNS[key] = {r.name: (r.typ, copy.deepcopy(r.inputs)) for r in mocks.resources}
    return _RUNS[key]


@pytest.fixture(scope="module")
def v2_case(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A V2 smoke case file for backend-0 (the smoke gate needs one while the track is on)."""
    path = tmp_path_factory.mktemp("cases") / "backend-0.yaml"
    path.write_text(
        "kind: v2\nmodel: backend-0\ncases:\n"
        "  - name: red-wine-row-1\n"
        "    inputs:\n"
        "      - {name: predict, shape: [1, 11], datatype: FP32,\n"
        "         data: [7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]}\n"
        "    expect:\n"
        "      outputs: [{name: predict, shape: [1, 1], datatype: INT64, data: [5]}]\n"
    )
    return str(path)


@pytest.fixture
def mesh_config(v2_case: str) -> dict[str, Any]:
    """The dev stack with the ModelMesh track on: primary and candidate from the same bucket."""
    return {**dev_config(), "llm-ab:modelmesh": {
        "enabled": True, "models": {"primary": {**PRIMARY, "version": "v0"}, "candidate": CANDIDATE},
        "smokeCases": [v2_case]}}


def edited(config: dict[str, Any], action: str, track: str) -> dict[str, Any]:
    after = copy.deepcopy(config)
    changes, _ = promote.apply(after, action, track)
    assert changes, f"{action} {track} changed nothing"
    return after


# --- the ModelMesh track in the program --------------------------------------------------


def test_modelmesh_is_off_in_dev_and_creates_nothing() -> None:
    run = record(dev_config())
    assert not [n for n, (typ, _) in run.items() if "serving.kserve.io" in typ or n.startswith("modelmesh")]


def test_modelmesh_track_stages_and_serves_both_models(mesh_config) -> None:
    run = record(mesh_config)
    isvcs = {inputs["metadata"]["name"]: inputs for typ, inputs in run.values() if typ == ISVC}
    assert set(isvcs) == {"backend-0", "backend-1"}
    assert isvcs["backend-0"]["metadata"]["namespace"] == "llm-ab-dev"
    for name, (typ, inputs) in run.items():
        if name.startswith("modelmesh-staging-") and typ.endswith("Job"):
            labels = inputs["spec"]["template"]["metadata"]["labels"]
            assert labels["llm-ab/s3-client"] == "true", name
    args = run["modelmesh-staging-candidate"][1]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--revision") + 1] == REV_B
    assert args[args.index("--prefix") + 1] == f"wine-quality/{REV_B}"
    assert args[args.index("--allow-patterns") + 1] == "sklearn_model.joblib"
    secret = run["modelmesh-storage"][1]
    assert secret["metadata"]["name"] == "storage-config"
    namespace = run["experiment-ns"][1]
    assert namespace["metadata"]["labels"]["modelmesh-enabled"] == "true"
    assert namespace["metadata"]["labels"]["monitor-pods-datasets"] == "enabled"


def test_modelmesh_outputs_feed_the_smoke_gate(run_main, pulumi_mocks, mesh_config, v2_case) -> None:
    exported = run_main(mesh_config)
    out = exported["modelmesh"]
    assert out["v2Url"] == "http://modelmesh-serving.llm-ab-dev.svc.cluster.local:8008"
    assert out["v2Model"] == "backend-0" and out["v2Cases"] == [v2_case]
    assert out["inferUrl"] == "http://modelmesh-serving.llm-ab-dev.svc.cluster.local:8008/v2/models/backend-0/infer"
    assert out["primary"]["storagePath"] == f"wine-quality/{REV_A}/sklearn_model.joblib"
    assert out["candidate"]["name"] == "backend-1" and out["candidate"]["version"] == "v1"
    jobs = [r for r in pulumi_mocks.of_type("kubernetes:batch/v1:Job") if r.name.startswith("smoke")]
    assert jobs, "the smoke gate runs in dev"
    for job in jobs:  # the smoke gate calls the primary through ModelMesh, with our V2 case
        args = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--v2-url") + 1] == out["v2Url"] and args[args.index("--v2-model") + 1] == "backend-0"


@pytest.mark.parametrize(
    ("mesh", "message"),
    [
        ({"enabled": True, "runtime": {"serverType": "tgi"}},
         "llm-ab:modelmesh.runtime.serverType must be one of mlserver, triton, ovms, torchserve, got 'tgi'"),
        ({"enabled": True, "models": {"primary": {**PRIMARY, "format": "onnx"}}},
         "llm-ab:modelmesh.models.primary.format must be a format the runtime llm-ab-mlserver (mlserver) "
         "supports: sklearn, xgboost, lightgbm"),
        ({"enabled": True, "models": {"candidate": CANDIDATE}},
         "llm-ab:modelmesh.models.primary is required when models.candidate is set"),
        ({"enabled": True, "install": True, "models": {"primary": PRIMARY}},
         "llm-ab:modelmesh.install is not supported"),
    ],
)
def test_bad_modelmesh_config_fails_before_anything_is_registered(mesh, message) -> None:
    with pytest.raises(pulumi.RunError) as err:
        record({**dev_config(), "llm-ab:modelmesh": mesh})
    assert message in str(err.value)


# --- each promotion and rollback previews as exactly the expected changes ----------------


def test_serving_promote_changes_only_the_stable_model_and_its_staging() -> None:
    before = dev_config()
    after = edited(before, "promote", "serving")
    assert after["llm-ab:models"]["stable"] == before["llm-ab:models"]["canary"]
    diff = preview_diff(record(before), record(after), ignore=SMOKE)
    # Both variants now name one revision: one Job stages its prefix (the canary's Job goes).
    assert diff.added == set() and diff.removed == {"staging-canary"}
    assert diff.changed == {
        "tgi-stable-deploy": {"spec.template.spec.containers[tgi].env[MODEL_ID].value"},
        "staging-stable": {"spec.template.spec.containers[stage].args",
                           "spec.template.metadata.annotations.llm-ab/model-roles"},
    }
    new = record(after)
    env = new["tgi-stable-deploy"][1]["spec"]["template"]["spec"]["containers"][0]["env"]
    model_id = next(e["value"] for e in env if e["name"] == "MODEL_ID")
    assert model_id.startswith("/mnt/datasets/model-weights/flan-t5-base/")


def test_promoting_a_vllm_canary_over_a_tgi_stable_moves_the_stable_to_vllm_in_place() -> None:
    """The engine migration's last step: models.stable takes the canary's engine with its model, and only the
    stable Deployment changes (its container: same Deployment, same selector, a rolling update)."""
    from tests.golden.render import dev_mixed

    before = dev_mixed()
    after = edited(before, "promote", "serving")
    assert after["llm-ab:models"]["stable"]["engine"] == "vllm"
    diff = preview_diff(record(before), record(after), ignore=SMOKE)
    assert diff.added == set() and diff.removed == set()
    assert set(diff.changed) == {"tgi-stable-deploy"}
    stable = record(after)["tgi-stable-deploy"][1]["spec"]
    assert stable["selector"] == record(before)["tgi-stable-deploy"][1]["spec"]["selector"]
    (container,) = stable["template"]["spec"]["containers"]
    assert (container["name"], container["image"], container["command"]) == (
        "vllm", "vllm/vllm-openai:v0.12.0", ["vllm", "serve"])
    assert container["args"][container["args"].index("--served-model-name") + 1] == "Qwen/Qwen2.5-0.5B-Instruct"


def test_serving_rollback_changes_only_the_replicas() -> None:
    before = dev_config()
    after = edited(before, "rollback", "serving")
    assert after["llm-ab:split"]["canaryPercent"] == 0
    run_before, run_after = record(before), record(after)
    diff = preview_diff(run_before, run_after)  # the smoke Job included: it is the only other change
    # The stable variant now runs both replicas, so it gains a disruption budget (it rolls no pod).
    assert diff.added == {"tgi-stable-pdb"} and diff.removed == set()
    changed = dict(diff.changed)
    # The smoke Job is replaced on every experiment change, by design (its checks digest moves).
    assert "metadata.labels.llm-ab/checks-digest" in changed.pop("smoke-job")
    # The declared split sits on the Deployments' own metadata (for the policy pack), never on the pod
    # template (no rollout) nor on the traffic Service, which must not change at all.
    assert "traffic-svc" not in changed
    in_place = {"spec.replicas", "metadata.annotations.llm-ab/declared-canary-percent"}
    assert changed == {"tgi-stable-deploy": in_place, "tgi-canary-deploy": in_place}
    assert run_after["tgi-stable-deploy"][1]["spec"]["replicas"] == 2
    assert run_after["tgi-canary-deploy"][1]["spec"]["replicas"] == 0


def test_modelmesh_promote_moves_the_candidate_into_the_primary(mesh_config) -> None:
    after = edited(mesh_config, "promote", "modelmesh")
    assert after["llm-ab:modelmesh"]["models"] == {"primary": CANDIDATE}
    run_before, run_after = record(mesh_config), record(after)
    diff = preview_diff(run_before, run_after, ignore=SMOKE)
    assert diff.added == set()
    assert diff.removed == {"modelmesh-candidate", "modelmesh-staging-candidate"}
    assert diff.changed == {
        "modelmesh-primary": {"metadata.labels.app.kubernetes.io/version", "spec.predictor.model.storage.path"},
        "modelmesh-staging-primary": {"spec.template.spec.containers[stage].args"},
    }
    primary = run_after["modelmesh-primary"][1]
    assert primary["metadata"]["name"] == "backend-0"
    assert primary["metadata"]["labels"]["app.kubernetes.io/version"] == "v1"
    assert primary["spec"]["predictor"]["model"]["storage"]["path"] == f"wine-quality/{REV_B}/sklearn_model.joblib"
    assert [i["metadata"]["name"] for t, i in run_after.values() if t == ISVC] == ["backend-0"]


def test_modelmesh_rollback_removes_only_the_candidate(mesh_config) -> None:
    after = edited(mesh_config, "rollback", "modelmesh")
    assert after["llm-ab:modelmesh"]["models"] == {"primary": {**PRIMARY, "version": "v0"}}
    diff = preview_diff(record(mesh_config), record(after), ignore=SMOKE)
    assert diff.added == set() and diff.changed == {}
    assert diff.removed == {"modelmesh-candidate", "modelmesh-staging-candidate"}


def test_promote_all_applies_both_tracks_at_once(mesh_config) -> None:
    after = copy.deepcopy(mesh_config)
    changes, notes = promote.apply(after, "promote")
    assert [c.key for c in changes] == ["llm-ab:models.stable", "llm-ab:modelmesh.models.primary",
                                        "llm-ab:modelmesh.models.candidate"]
    assert notes == []
    again, notes = promote.apply(after, "promote")
    assert again == [] and notes[0] == "serving: nothing to change" and "no candidate" in notes[1]


# --- the command line on a stack file ------------------------------------------------------

STACK_FILE = """\
# dev stack (comments must survive a promotion)
config:
  llm-ab:namespace: llm-ab-dev
  llm-ab:split:
    canaryPercent: 50 # half and half
    replicas: 2
  llm-ab:models:
    stable:
      id: google/flan-t5-small
      revision: 0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab
    # the canary under test
    canary:
      id: google/flan-t5-base
      revision: 7bcac572ce56db69c1ea7c8af255c5d7c9672fc2
  llm-ab:smoke:
    enabled: false
  llm-ab:modelmesh:
    enabled: true
    models:
      primary: {repo: julien-c/wine-quality, revision: <REV_A>, file: sklearn_model.joblib}
      candidate:
        repo: julien-c/wine-quality
        revision: <REV_B>  # verified on the Hub
        file: sklearn_model.joblib
""".replace("<REV_A>", REV_A).replace("<REV_B>", REV_B)


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(STACK_FILE)
    return path


def test_cli_promote_edits_the_file_and_keeps_its_comments(stack_file: Path, capsys) -> None:
    assert promote.main(["promote", "--stack", "dev", "--file", str(stack_file)]) == 0
    text = stack_file.read_text()
    for comment in ("# dev stack (comments must survive a promotion)", "# half and half", "# the canary under test"):
        assert comment in text
    import yaml

    config = yaml.safe_load(text)["config"]
    assert config["llm-ab:models"]["stable"] == config["llm-ab:models"]["canary"]
    assert config["llm-ab:modelmesh"]["models"] == {"primary": {
        "repo": "julien-c/wine-quality", "revision": REV_B, "file": "sklearn_model.joblib"}}
    out = capsys.readouterr().out
    assert "llm-ab:models.stable: google/flan-t5-small@0fc9ddf -> google/flan-t5-base@7bcac57" in out
    assert "make preview STACK=dev" in out


def test_cli_rollback_touches_only_its_lines(stack_file: Path) -> None:
    # `tgi` is the serving track's name from before vLLM; it still works.
    assert promote.main(["rollback", "--stack", "dev", "--file", str(stack_file), "--track", "tgi"]) == 0
    before, after = STACK_FILE.splitlines(), stack_file.read_text().splitlines()
    assert [(a, b) for a, b in zip(before, after, strict=True) if a != b] == [
        ("    canaryPercent: 50 # half and half", "    canaryPercent: 0  # half and half")]  # comment column kept


def test_cli_dry_run_writes_nothing(stack_file: Path, capsys) -> None:
    assert promote.main(["rollback", "--file", str(stack_file), "--track", "modelmesh", "--dry-run"]) == 0
    assert stack_file.read_text() == STACK_FILE
    assert "llm-ab:modelmesh.models.candidate: julien-c/wine-quality@bbbbbbb -> (absent)" in capsys.readouterr().out


def test_cli_refuses_a_track_with_nothing_to_do_and_an_invalid_result(stack_file: Path, capsys) -> None:
    assert promote.main(["rollback", "--file", str(stack_file), "--track", "modelmesh"]) == 0
    assert promote.main(["promote", "--file", str(stack_file), "--track", "modelmesh"]) == 2
    assert "modelmesh.models.candidate is not set" in capsys.readouterr().err
    broken = stack_file.read_text().replace("revision: 7bcac572ce56db69c1ea7c8af255c5d7c9672fc2", "revision: main")
    stack_file.write_text(broken)
    assert promote.main(["promote", "--file", str(stack_file), "--track", "serving"]) == 2
    assert "nothing written" in capsys.readouterr().err and stack_file.read_text() == broken
