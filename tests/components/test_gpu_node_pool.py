"""GpuNodePool and NvidiaDevicePlugin under mocks, and the pure GPU catalog and pool helpers."""

from __future__ import annotations

import re

import pytest

from components.cluster_addons import DEVICE_PLUGIN_NAME, NvidiaDevicePlugin, NvidiaDevicePluginArgs
from components.gpu_node_pool import (
    GPU_POOL_LABEL,
    GpuNodePool,
    GpuNodePoolArgs,
    gpu_taint,
    needs_device_plugin_daemonset,
    pool_labels,
)
from stacks.gpu_capacity import (
    GPU_FAMILIES,
    PoolShape,
    gpus_per_node,
    instance_family,
    node_price,
    pool_estimate,
    price_table,
    replica_cost,
    replicas_per_node,
    unknown_gpu_type_reason,
)

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def args(**overrides) -> GpuNodePoolArgs:
    base = dict(pool="g5", cluster_name="llm-ab-test", node_role_arn="arn:aws:iam::123456789012:role/node",
                subnet_ids=["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"], instance_types=["g5.xlarge"],
                min_size=1, desired_size=2, max_size=4, disk_size_gib=200)
    base.update(overrides)
    return GpuNodePoolArgs(**base)


# --- the component under mocks ------------------------------------------------------------


def test_node_group_is_tainted_labelled_and_sized(run_program, pulumi_mocks) -> None:
    run_program(lambda: GpuNodePool("gpu-g5", args(capacity_type="SPOT", labels={"team": "ml"})))
    (ng,) = pulumi_mocks.of_type(NODE_GROUP)
    assert ng.name == "gpu-g5-ng"
    i = ng.inputs
    # AWS spells the effect NO_SCHEDULE; it shows on the node as nvidia.com/gpu=true:NoSchedule.
    assert i["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert i["labels"] == {"team": "ml", GPU_POOL_LABEL: "g5"}
    assert i["amiType"] == "AL2023_x86_64_NVIDIA"
    assert i["capacityType"] == "SPOT"
    assert i["diskSize"] == 200
    assert i["instanceTypes"] == ["g5.xlarge"]
    assert i["scalingConfig"] == {"minSize": 1, "desiredSize": 2, "maxSize": 4}
    assert i["updateConfig"] == {"maxUnavailable": 1}
    assert i["subnetIds"] == ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
    assert "launchTemplate" not in i  # disk_size conflicts with a launch template


def test_node_group_waits_for_the_role_policies_and_gets_a_long_timeout(run_program, pulumi_mocks) -> None:
    def program():
        import pulumi_aws as aws

        attachment = aws.iam.RolePolicyAttachment("worker", role="node", policy_arn="arn:aws:iam::aws:policy/x")
        GpuNodePool("gpu-g5", args(wait_for=[attachment]))
        return attachment

    attachment = run_program(program)
    opts = pulumi_mocks.options["gpu-g5-ng"]
    assert attachment in opts.depends_on
    assert opts.custom_timeouts is not None and opts.custom_timeouts.create == "45m"


def test_our_pool_label_wins_over_a_user_label() -> None:
    assert pool_labels("g5", {GPU_POOL_LABEL: "other", "a": "b"}) == {GPU_POOL_LABEL: "g5", "a": "b"}
    assert gpu_taint() == {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_size": 3, "desired_size": 3, "max_size": 2}, "maxSize must be >= minSize (3), got 2"),
        ({"desired_size": 5}, "desiredSize must be between minSize (1) and maxSize (4), got 5"),
        ({"ami_type": "AL2_x86_64_GPU"}, "ami_type must be one of"),
        ({"capacity_type": "on-demand"}, "capacity_type must be one of"),
        ({"disk_size_gib": 20}, "disk_size_gib must be >= 100"),
        ({"instance_types": []}, "instance_types must not be empty"),
    ],
)
def test_args_reject_what_eks_or_tgi_cannot_use(overrides, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        args(**overrides)


def test_bottlerocket_has_the_device_plugin_built_in() -> None:
    assert needs_device_plugin_daemonset("AL2023_x86_64_NVIDIA")
    assert not needs_device_plugin_daemonset("BOTTLEROCKET_x86_64_NVIDIA")


def test_device_plugin_runs_pinned_on_the_tainted_pools_it_is_given(run_program, pulumi_mocks) -> None:
    image = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
    run_program(lambda: NvidiaDevicePlugin("nvidia", NvidiaDevicePluginArgs(image=image, pools=["g5", "g6"])))
    (ds,) = pulumi_mocks.of_type("kubernetes:apps/v1:DaemonSet")
    assert ds.inputs["metadata"]["name"] == DEVICE_PLUGIN_NAME
    assert ds.inputs["metadata"]["namespace"] == "kube-system"
    spec = ds.inputs["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == image
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["priorityClassName"] == "system-node-critical"
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": GPU_POOL_LABEL, "operator": "In", "values": ["g5", "g6"]}]}]
    assert spec["volumes"][0]["hostPath"]["path"] == "/var/lib/kubelet/device-plugins"


def test_device_plugin_needs_a_pool() -> None:
    with pytest.raises(ValueError, match="pools"):
        NvidiaDevicePluginArgs(image="nvcr.io/nvidia/k8s-device-plugin:v0.17.1", pools=[])


# --- the GPU catalog and cost arithmetic (pure) ------------------------------------------


def test_price_table_covers_every_family_with_dated_positive_prices() -> None:
    table = price_table()
    assert re.match(r"^\d{4}-\d{2}-\d{2}$", table.as_of) and table.region == "us-east-1"
    assert {instance_family(t) for t in table.instances} == set(GPU_FAMILIES)
    for row in table.instances.values():
        assert row.gpus in (1, 4, 8) and row.usd_per_hour > 0, row
    assert table.instances["g5.xlarge"].gpus == 1 and table.instances["g5.12xlarge"].gpus == 4
    assert table.instances["p5.48xlarge"].gpus == 8


@pytest.mark.parametrize(
    ("instance_type", "reason"),
    [
        ("g5.xlarge", None),
        ("m5.large", "'m5.large' is not a GPU instance type"),
        ("g5.3xlarge", "'g5.3xlarge' is not a g5 size"),
        ("p3.2xlarge", "'p3.2xlarge' is not a GPU instance type"),
    ],
)
def test_only_catalogued_gpu_types_may_be_in_a_pool(instance_type: str, reason: str | None) -> None:
    found = unknown_gpu_type_reason(instance_type)
    assert (found is None) if reason is None else (found is not None and found.startswith(reason)), found


def test_mixed_pools_count_the_smallest_node_and_the_dearest_price() -> None:
    mixed = ["g5.xlarge", "g5.12xlarge"]
    assert gpus_per_node(mixed) == 1
    assert node_price(mixed) == price_table().instances["g5.12xlarge"].usd_per_hour
    assert replicas_per_node(["g5.12xlarge"], 2) == 2
    assert replicas_per_node(["g5.12xlarge"], 3) == 1


def test_pool_estimate_is_desired_nodes_times_the_price() -> None:
    pool = PoolShape(name="g5", instance_types=["g5.xlarge"], capacity_type="ON_DEMAND",
                     min_size=0, desired_size=11, max_size=12)
    estimate = pool_estimate(pool)
    assert estimate["gpus"] == 11 and estimate["gpusPerNode"] == 1
    assert estimate["usdPerHour"] == round(11 * 1.006, 2)
    assert estimate["usdPerHourAtMax"] == round(12 * 1.006, 2)
    assert "note" not in estimate
    spot = pool_estimate(PoolShape(name="s", instance_types=["g6.xlarge"], capacity_type="SPOT",
                                   min_size=0, desired_size=1, max_size=1))
    assert "upper bound" in spot["note"]


def test_replica_cost_charges_the_gpus_each_variant_requests() -> None:
    # Two GPUs of a 4-GPU g5.12xlarge per replica: half a node each.
    cost = replica_cost({"stable": 3, "canary": 1}, 2, ["g5.12xlarge"])
    half = price_table().instances["g5.12xlarge"].usd_per_hour / 2
    assert cost == {"stable": round(3 * half, 2), "canary": round(half, 2), "total": round(4 * half, 2)}

