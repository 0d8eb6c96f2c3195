"""The pack on whole programs: dev (and staging once it exists) pass, a broken dev variant does not."""

from __future__ import annotations

import copy
from typing import Any

import pulumi
import pytest

from components import naming
from policy import contract
from policy.props import PVC
from tests.harness import ROOT, RecordingMocks, Registration, stack_config
from tests.policy.pack_runner import (
    POLICY_DIR,
    advisory,
    load_pack_config,
    mandatory,
    run_pack,
    run_stack_program,
    to_policy_resources,
)
from tests.samples import dev_config

WEIGHTS_UNPROTECTED = ("storage-weights-protected", "weights-data",
                       "weights volume claim 'minio-data' is not protected; retainOnDelete is invisible to policies "
                       "(the engine sends only `protect`), so only protect=True satisfies this check")


def run_with_pack(mocks: RecordingMocks, captured: list[Registration], stack: str,
                  config: dict[str, Any]) -> list[Any]:
    run_stack_program(config)
    return run_pack(to_policy_resources(mocks, captured), load_pack_config(POLICY_DIR / "config" / f"{stack}.json"))


def test_dev_program_has_no_mandatory_violation(pulumi_mocks, registrations) -> None:
    found = run_with_pack(pulumi_mocks, registrations, "dev", dev_config())
    assert mandatory(found) == []
    assert advisory(found) == []


def test_dev_with_unprotected_storage_gets_the_advisory(pulumi_mocks, registrations) -> None:
    config = {**dev_config(), "llm-ab:storage": {**dev_config()["llm-ab:storage"], "protect": False}}
    found = run_with_pack(pulumi_mocks, registrations, "dev", config)
    assert mandatory(found) == []
    assert advisory(found) == [WEIGHTS_UNPROTECTED]


MODELMESH = {"enabled": True, "models": {"primary": {
    "repo": "julien-c/wine-quality", "revision": "a" * 40, "file": "sklearn_model.joblib", "format": "sklearn"}}}


def test_dev_with_modelmesh_has_no_mandatory_violation(pulumi_mocks, registrations) -> None:
    config = {**dev_config(), "llm-ab:modelmesh": MODELMESH, "llm-ab:smoke": {"enabled": False}}
    found = run_with_pack(pulumi_mocks, registrations, "dev", config)
    assert "kubernetes:serving.kserve.io/v1alpha1:ServingRuntime" in {r.typ for r in pulumi_mocks.resources}
    assert mandatory(found) == []
    assert advisory(found) == []


def test_dev_weights_claim_is_protected_which_policies_see_and_retained_which_they_cannot(
        pulumi_mocks, registrations) -> None:
    """storage-weights-protected sees `protect`; retainOnDelete, which policies can't see, is checked here."""
    run_stack_program(dev_config())
    (claim,) = pulumi_mocks.of_type(PVC)
    assert claim.inputs["metadata"]["labels"]["app.kubernetes.io/component"] == contract.WEIGHTS_COMPONENT
    assert pulumi_mocks.options[claim.name].retain_on_delete is True
    (policy_claim,) = [r for r in to_policy_resources(pulumi_mocks, registrations) if r.resource_type == PVC]
    assert policy_claim.opts.protect is True
    assert not hasattr(policy_claim.opts, "retain_on_delete")


def test_policies_see_dev_secrets_unwrapped(pulumi_mocks, registrations) -> None:
    run_stack_program(dev_config())
    recorded = pulumi_mocks.named("weights-root").inputs["stringData"]
    assert set(recorded) == {"4dabf18193072939515e22adb298388d", "value"}
    (root,) = [r for r in to_policy_resources(pulumi_mocks, registrations) if r.name == "weights-root"]
    assert dict(root.props["stringData"]) == recorded["value"]
    assert sorted(d.name for d in root.property_dependencies["stringData"]) == [
        "weights-root-password", "weights-root-user"]


def break_dev(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """Three mistakes a PR could make: an unpinned canary with a bigger share, a public split, default keys."""
    props = copy.copy(args.props)
    if args.name == "tgi-canary-deploy":
        spec = copy.deepcopy(props["spec"])
        spec["replicas"] = 3
        spec["template"]["spec"]["containers"][0]["image"] = "ghcr.io/huggingface/text-generation-inference:latest"
        props["spec"] = spec
    elif args.name == "traffic-svc":
        props["spec"] = {**props["spec"], "type": "LoadBalancer"}
    elif args.name == "weights-root":
        props["string_data"] = {"MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": "minioadmin"}
    else:
        return None
    return pulumi.ResourceTransformationResult(props, args.opts)


def test_broken_dev_variant_fails_with_the_expected_rules(pulumi_mocks,
                                                          registrations) -> None:
    pulumi.runtime.register_stack_transformation(break_dev)  # this test's runtime only
    found = run_with_pack(pulumi_mocks, registrations, "dev", dev_config())
    assert mandatory(found) == [
        ("k8s-pinned-images", "tgi-canary-deploy",
         "container 'tgi' uses unpinned image 'ghcr.io/huggingface/text-generation-inference:latest'"),
        # Scaled past one replica by hand, the canary has no disruption budget (the program adds one only for
        # the replicas it plans).
        ("k8s-pdb-multi-replica", "tgi-canary-deploy",
         "Deployment 'text-generation-inference-canary' runs up to 3 replicas but no PodDisruptionBudget in "
         "namespace 'llm-ab-dev' selects its pods: a node drain may evict them all at once"),
        ("no-plaintext-credentials", "weights-root",
         "stringData.MINIO_ROOT_USER contains the well-known default credential 'minioadmin'"),
        ("no-plaintext-credentials", "weights-root",
         "stringData.MINIO_ROOT_PASSWORD contains the well-known default credential 'minioadmin'"),
        ("k8s-no-public-services", "traffic-svc",
         "Service 'text-generation-inference' is of type LoadBalancer, which exposes it outside the cluster; "
         "allowed types: ClusterIP, ExternalName"),
        ("split-canary-share-cap", "<stack>",
         "the canary runs 3 of 4 serving replicas (75%), above this stack's cap of 50%"),
        ("split-within-tolerance", "<stack>",
         "3 of 4 serving replicas give a 75% canary, 25 points from the declared 50%, more than the tolerance of 5"),
    ]
    assert advisory(found) == [
        ("k8s-secret-data-not-literal", "weights-root",
         "Secret 'weights-root' sets stringData from literals (or stack config), not from a generating resource; "
         "generate it (pulumi-random) or list it in allowedSecrets"),
    ]


def test_tgi_deployments_carry_the_declared_split_for_the_policies(pulumi_mocks) -> None:
    run_stack_program({**dev_config(), "llm-ab:split": {
        "canaryPercent": 10, "replicas": 7, "tolerance": 5}})
    for variant in ("stable", "canary"):
        deploy = pulumi_mocks.k8s_named("apps/v1:Deployment", f"text-generation-inference-{variant}")
        assert deploy.inputs["metadata"]["annotations"] == {contract.DECLARED_PERCENT_ANNOTATION: "10",
                                                            contract.SPLIT_TOLERANCE_ANNOTATION: "5"}
        # On the Deployment itself, not its pod template: a new split must roll no pods.
        assert "annotations" not in deploy.inputs["spec"]["template"]["metadata"]
    svc = pulumi_mocks.k8s_named("core/v1:Service", "text-generation-inference")
    assert "annotations" not in svc.inputs["metadata"]
    assert (naming.DECLARED_PERCENT_ANNOTATION, naming.SPLIT_TOLERANCE_ANNOTATION) == (
        contract.DECLARED_PERCENT_ANNOTATION, contract.SPLIT_TOLERANCE_ANNOTATION)  # one owner


STAGING = ROOT / "Pulumi.staging.yaml"


@pytest.mark.skipif(not STAGING.exists(), reason="Pulumi.staging.yaml (the EKS stack) is not in the tree yet")
def test_staging_program_has_no_mandatory_violation(pulumi_mocks, registrations) -> None:
    found = run_with_pack(pulumi_mocks, registrations, "staging", stack_config("staging"))
    assert mandatory(found) == []


# --- vLLM variants: the same rules hold whatever the engine -----------------------------------------

def test_the_vllm_pair_and_the_mixed_pair_have_no_violation(pulumi_mocks, registrations) -> None:
    """dev-vllm (both variants on vLLM) and the TGI->vLLM migration pair pass its pack config (GPUs required)."""
    from tests.golden.render import dev_mixed

    found = run_with_pack(pulumi_mocks, registrations, "dev-vllm", stack_config("dev-vllm"))
    assert (mandatory(found), advisory(found)) == ([], [])
    vllm_pods = [r for r in pulumi_mocks.of_type("kubernetes:apps/v1:Deployment")
                 if r.inputs["spec"]["template"]["spec"]["containers"][0]["name"] == "vllm"]
    assert len(vllm_pods) == 2  # the pack did look at vLLM pods
    pulumi_mocks.resources.clear()
    registrations.clear()
    found = run_with_pack(pulumi_mocks, registrations, "dev-vllm", dev_mixed())
    assert (mandatory(found), advisory(found)) == ([], [])


def break_vllm_canary(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """A hand-edited vLLM canary: a floating tag, no probes, no GPU limit (so no GPU placement either)."""
    if args.name != "tgi-canary-deploy":
        return None
    props = copy.copy(args.props)
    spec = copy.deepcopy(props["spec"])
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "vllm", container["name"]
    container["image"] = "vllm/vllm-openai:latest"
    del container["startupProbe"]
    container["readinessProbe"] = {"tcpSocket": {"port": "http"}}
    del container["resources"]["limits"][contract.GPU_RESOURCE]
    props["spec"] = spec
    return pulumi.ResourceTransformationResult(props, args.opts)


def test_a_broken_vllm_canary_fails_the_image_probe_and_gpu_rules(pulumi_mocks, registrations) -> None:
    pulumi.runtime.register_stack_transformation(break_vllm_canary)
    found = run_with_pack(pulumi_mocks, registrations, "dev-vllm", stack_config("dev-vllm"))
    assert mandatory(found) == [
        ("k8s-pinned-images", "tgi-canary-deploy", "container 'vllm' uses unpinned image 'vllm/vllm-openai:latest'"),
        ("gpu-limits-required", "tgi-canary-deploy",
         "no container ('vllm') limits nvidia.com/gpu; inference pods need a GPU on this stack (requireGpu)"),
        ("inference-http-probes", "tgi-canary-deploy", "container 'vllm' has no startupProbe"),
        ("inference-http-probes", "tgi-canary-deploy",
         "container 'vllm' has a readinessProbe that is not an HTTP check (httpGet)"),
    ]
