"""The settings loader: defaults, the dev stack, and a clear error for every bad value."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import BaseModel

from analysis.thresholds import CONFIG_KEYS as THRESHOLD_KEYS
from policy.contract import image_is_pinned
from stacks.config_types import ConfigError, show
from stacks.settings import Platform, Settings, parse_settings
from tests.harness import raw_config
from tests.samples import SHA_A, SHA_B, dev_config, minimal, with_value


def test_defaults_fill_everything_but_the_models() -> None:
    s = parse_settings(minimal())
    assert s.namespace == "llm-ab" and s.platform is Platform.LOCAL
    assert (s.split.plan().stable_replicas, s.split.plan().canary_replicas) == (1, 1)
    assert s.models.stable.path == "flan-t5-small" and s.models.stable.object_prefix == f"flan-t5-small/{SHA_A}"
    assert s.storage.protect is True and s.datashim.install is False and s.smoke.enabled is True


def test_dev_stack_is_the_tutorials_pair() -> None:
    s: Settings = parse_settings(raw_config(dev_config()), stack="dev")
    assert s.models.stable.id == "google/flan-t5-small" and s.models.canary.id == "google/flan-t5-base"
    assert s.split.canary_percent == 50 and s.split.plan().total == 2
    assert s.tgi.image.endswith(":1.3.4")


def test_scalar_strings_from_the_cli_are_accepted() -> None:
    # `pulumi config set --path split.canaryPercent 10` stores the string "10".
    s = parse_settings(with_value("split", {"canaryPercent": "10", "replicas": "10"}))
    plan = s.split.plan()
    assert plan.canary_replicas == 1 and plan.stable_replicas == 9


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("split.canaryPercent", 150, "llm-ab:split.canaryPercent must be a number from 0 to 100, got 150"),
        ("split.canaryPercent", "ten", "llm-ab:split.canaryPercent must be a number from 0 to 100, got 'ten'"),
        ("split.replicas", 0, "llm-ab:split.replicas must be a whole number from 1 to 1000, got 0"),
        ("split.replicas", 2.5, "llm-ab:split.replicas must be a whole number from 1 to 1000, got 2.5"),
        ("split.tolerance", -1, "llm-ab:split.tolerance must be a number from 0 to 50, got -1"),
        ("split.canaryPercnt", 10, "llm-ab:split.canaryPercnt is not a known setting"),
        ("namespace", "LLM_AB", "llm-ab:namespace must be a DNS label"),
        ("platform", "gke", "llm-ab:platform must be one of local, eks, got 'gke'"),
        ("models.stable.revision", "main", "llm-ab:models.stable.revision must be a pinned commit"),
        ("models.canary.id", "not a repo", "llm-ab:models.canary.id must be a Hugging Face repo id"),
        ("models.canary.path", "../etc", "llm-ab:models.canary.path must be an object prefix"),
        ("tgi.image", "ghcr.io/huggingface/text-generation-inference:latest",
         "llm-ab:tgi.image must be an image pinned by an exact version tag or a digest"),
        ("tgi.image", "ghcr.io/huggingface/text-generation-inference",
         "llm-ab:tgi.image must be an image pinned"),
        ("serving.gpusPerReplica", -1, "llm-ab:serving.gpusPerReplica must be a whole number from 0 to 16, got -1"),
        ("tgi.maxTotalTokens", 100, "llm-ab:tgi.maxTotalTokens must be greater than tgi.maxInputTokens (512)"),
        ("serving.resources.limits.memory", "lots",
         "llm-ab:serving.resources.limits.memory must be a Kubernetes quantity"),
        ("serving.startupBudgetSeconds", 5,
         "llm-ab:serving.startupBudgetSeconds must be a whole number from 60 to 86400"),
        ("storage.kind", "s3", "llm-ab:storage.kind must be one of minio, got 's3'"),
        ("storage.bucket", "Bad_Bucket", "llm-ab:storage.bucket must be an S3 bucket name"),
        ("storage.minioImage", "quay.io/minio/minio", "llm-ab:storage.minioImage must be an image pinned"),
        ("storage.protect", "maybe", "llm-ab:storage.protect must be true or false, got 'maybe'"),
        ("datashim.datasetName", "Model_Weights", "llm-ab:datashim.datasetName must be a DNS label"),
        ("smoke.image", "python", "llm-ab:smoke.image must be an image pinned"),
        ("staging.image", "python:latest", "llm-ab:staging.image must be an image pinned"),
        ("traffic.allowedNamespaces", "team-a", "llm-ab:traffic.allowedNamespaces must be a list of strings"),
        ("bogus", 1, "llm-ab:bogus is not a known setting"),
    ],
)
def test_bad_value_is_rejected_naming_key_value_and_what_is_allowed(path: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(with_value(path, value))
    assert str(err.value).startswith(expected), str(err.value)


def number_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """Every whole-number and number key of the schema (``gpu.nodePools[0].minSize``), found by walking it, so a
    number key added later is covered too."""
    keys = []
    for name, field in model.model_fields.items():
        key, args = prefix + (field.alias or name), typing.get_args(field.annotation) or (field.annotation,)
        sections = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if sections:
            keys += number_keys(sections[0], key + ("[0]." if typing.get_origin(field.annotation) is tuple else "."))
        elif int in args or float in args:
            keys.append(key)
    return keys


NUMBER_KEYS = number_keys()


def test_the_number_keys_are_found() -> None:
    assert {"split.replicas", "split.canaryPercent", "serving.gpusPerReplica", "gpu.nodePools[0].diskSizeGiB",
            "vllm.gpuMemoryUtilization", "analysis.rate", "modelmesh.runtime.ports.grpc"} <= set(NUMBER_KEYS)


def raw_with(key: str, value: Any) -> dict[str, Any]:
    """:func:`minimal` with ``key`` (``a.b[0].c``: a list of one object) set to ``value``."""
    raw = minimal()
    node: dict[str, Any] = raw
    *parents, leaf = key.split(".")
    for part in parents:
        if part.endswith("[0]"):
            item = {"name": "gpu"}  # the one required key of a list item (gpu.nodePools)
            node[part[:-3]] = [item]
            node = item
        else:
            node = node.setdefault(part, {})
    node[leaf] = value
    return raw


NOT_FINITE = ["inf", "Infinity", "-inf", "nan", "NaN", float("inf"), float("-inf"), float("nan"), 10 ** 400]
"""Values no number key takes (the last is finite, but no float holds it)."""


@pytest.mark.parametrize("value", NOT_FINITE)
@pytest.mark.parametrize("key", NUMBER_KEYS)
def test_no_number_key_takes_an_infinite_or_nan_value(key: str, value: Any) -> None:
    """Not an OverflowError from int(): the key, the value and the allowed range, like every other refusal."""
    with pytest.raises(ConfigError) as err:
        parse_settings(raw_with(key, value))
    assert err.value.key == key, str(err.value)
    assert f" must be a {'whole ' if 'whole' in str(err.value) else ''}number" in str(err.value)
    assert str(err.value).endswith(f", got {show(value)}"), str(err.value)


@pytest.mark.parametrize("value", NOT_FINITE)
@pytest.mark.parametrize("key", [f"analysis.{key}" for key in THRESHOLD_KEYS.values() if key != "minSamples"])
def test_no_analysis_threshold_takes_an_infinite_or_nan_value(key: str, value: Any) -> None:
    """The thresholds' own check (analysis/thresholds.py, which the analysis Job runs without the schema);
    minSamples is a whole number like those above (a huge one is refused at analysis.requests, which it exceeds)."""
    with pytest.raises(ConfigError) as err:
        parse_settings(raw_with(key, value))
    assert err.value.key == key and " must be " in str(err.value), str(err.value)


def with_paths(stable: str, canary: str) -> dict[str, Any]:
    raw = minimal()
    raw["models"]["stable"]["path"], raw["models"]["canary"]["path"] = stable, canary
    return raw


def test_a_variant_path_inside_the_others_prefix_is_refused_naming_both_keys_and_values() -> None:
    """Staging the stable (``flan/<sha>``) would delete the canary's objects under ``flan/<sha>/canary/...``."""
    with pytest.raises(ConfigError) as err:
        parse_settings(with_paths("flan", f"flan/{SHA_A}/canary"))
    message = str(err.value)
    assert err.value.key == "models.canary.path"
    assert message.startswith("llm-ab:models.canary.path must not nest with models.stable.path ('flan'): "
                              f"models.canary is staged under 'flan/{SHA_A}/canary/{SHA_B}', inside models.stable's "
                              f"'flan/{SHA_A}', and staging models.stable deletes every object"), message
    assert message.endswith(f"got 'flan/{SHA_A}/canary'"), message


def test_a_stable_path_inside_the_canarys_prefix_is_refused_too() -> None:
    with pytest.raises(ConfigError, match=rf"^llm-ab:models.canary.path must not nest with models.stable.path "
                                          rf"\('base/{SHA_B}/stable'\): models.stable is staged under"):
        parse_settings(with_paths(f"base/{SHA_B}/stable", "base"))


def test_a_modelmesh_model_inside_a_variants_prefix_is_refused() -> None:
    raw = minimal()
    raw["modelmesh"] = {"models": {"primary": {"repo": "julien-c/wine-quality", "revision": "a" * 40,
                                               "file": "sklearn_model.joblib", "path": f"flan-t5-base/{SHA_B}/mm"}}}
    with pytest.raises(ConfigError, match=r"^llm-ab:modelmesh.models.primary.path must not nest with "
                                          r"models.canary.path \('flan-t5-base'\)"):
        parse_settings(raw)


@pytest.mark.parametrize(("stable", "canary"), [("flan", "flan-canary"), ("flan", "flan/canary"), ("a/b", "a/c")])
def test_paths_that_only_look_alike_are_fine(stable: str, canary: str) -> None:
    s = parse_settings(with_paths(stable, canary))
    assert (s.models.stable.path, s.models.canary.path) == (stable, canary)


def test_missing_model_is_required() -> None:
    with pytest.raises(ConfigError, match=r"^llm-ab:models.canary is required"):
        parse_settings({"models": {"stable": minimal()["models"]["stable"]}})


def test_split_that_does_not_fit_the_replicas_names_the_smallest_total() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(with_value("split", {"canaryPercent": 10, "replicas": 2, "tolerance": 5}))
    assert str(err.value).startswith("llm-ab:split.replicas cannot realise the declared split")
    assert "smallest replica total that fits is 7" in str(err.value)


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("ghcr.io/huggingface/text-generation-inference:1.3.4", True),
        ("ghcr.io/huggingface/text-generation-inference@sha256:" + "a" * 64, True),
        ("localhost:5000/tgi:3.3.7", True),
        ("localhost:5000/tgi", False),
        ("python:latest", False),
        ("python", False),
        ("python:main", False),
        ("repo:head", False),
        ("python:slim", False),
        ("repo@sha256:abc", False),
    ],
)
def test_image_pinning_rule(image: str, pinned: bool) -> None:
    assert image_is_pinned(image) is pinned


def test_smoke_case_files_must_exist_in_the_repository() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(with_value("smoke.cases", ["smoke/cases/flan-t5-small.yaml", "smoke/cases/nope.yaml"]))
    assert str(err.value) == ("llm-ab:smoke.cases[1] must name a case file inside the repository, "
                              "got 'smoke/cases/nope.yaml' (not found)")


def test_flat_dotted_key_explains_how_to_set_an_object_field() -> None:
    raw = {**minimal(), "split.canaryPercent": "10"}
    with pytest.raises(ConfigError) as err:
        parse_settings(raw)
    assert str(err.value) == ("llm-ab:split.canaryPercent is not a known setting: split is an object, so set its "
                              "field with `pulumi config set --path split.canaryPercent '10'`")


def test_the_settings_schema_imports_no_pulumi_and_no_resource_module() -> None:
    """Settings are pure: a bad value fails before anything that could register a resource is loaded."""
    import subprocess
    import sys

    from tests.harness import ROOT

    code = ("import sys, stacks.settings; "
            "print(sorted(m for m in sys.modules if m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_keys_under_their_names_before_vllm_are_still_read() -> None:
    """Before vLLM the serving pod's keys were tgi.* and the GPU pool gpu.tgiPool: a stack file of then still
    deploys the same pods, errors name the key as the file spells it, and one key under both names is refused."""
    from stacks.settings import renamed_keys_in

    old = {**minimal(), "tgi": {"image": "ghcr.io/huggingface/text-generation-inference:1.3.4",
                                "gpusPerReplica": 1, "shmSize": "2Gi"}}
    assert renamed_keys_in(old) == [("tgi.gpusPerReplica", "serving.gpusPerReplica"),
                                    ("tgi.shmSize", "serving.shmSize")]
    s = parse_settings(old)
    assert (s.serving.gpus_per_replica, s.serving.shm_size) == (1, "2Gi")
    assert s.tgi.image == "ghcr.io/huggingface/text-generation-inference:1.3.4"
    with pytest.raises(ConfigError) as err:
        parse_settings({**old, "tgi": {**old["tgi"], "gpusPerReplica": -1}})
    assert str(err.value).startswith("llm-ab:tgi.gpusPerReplica must be a whole number from 0 to 16, got -1")
    with pytest.raises(ConfigError) as err:
        parse_settings({**old, "tgi": {**old["tgi"], "resources": {"limits": {"memory": "lots"}}}})
    assert err.value.key == "tgi.resources.limits.memory"
    # Under the engine an unset `serving` arrives as Pulumi.yaml's whole default object: the old keys still win.
    from stacks.settings import ServingSettings

    engine_default = ServingSettings().model_dump(mode="json", by_alias=True)
    assert parse_settings({**old, "serving": engine_default}).serving.gpus_per_replica == 1
    with pytest.raises(ConfigError) as err:
        parse_settings({**old, "serving": {"shmSize": "4Gi"}})
    assert str(err.value) == ("llm-ab:tgi.shmSize is serving.shmSize's old name and serving.shmSize is set too: "
                              "remove tgi.shmSize, got '2Gi'")


def test_the_gpu_pool_under_its_name_before_vllm_is_still_read() -> None:
    from tests.samples import staging_config

    raw = {key.split(":", 1)[1]: value for key, value in staging_config().items()}
    gpu = dict(raw["gpu"])
    gpu["tgiPool"] = gpu.pop("servingPool")
    s = parse_settings({**raw, "gpu": {**gpu, "servingPool": ""}}, stack="staging")  # the engine's default ''
    assert s.gpu.serving_pool is not None and s.gpu.serving_pool.name == "g5"
    with pytest.raises(ConfigError) as err:
        parse_settings({**raw, "gpu": {**gpu, "tgiPool": "p5"}}, stack="staging")
    assert str(err.value).startswith("llm-ab:gpu.tgiPool must name one of gpu.nodePools (g5), got 'p5'")
