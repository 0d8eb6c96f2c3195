"""Kubernetes add-ons the eks platform deploys into the cluster it creates.

- :class:`NvidiaDevicePlugin`: NVIDIA's static device-plugin DaemonSet, on
  the AL2023 GPU pools only (Bottlerocket's NVIDIA AMIs run the plugin themselves). Without it no
  node advertises ``nvidia.com/gpu`` and GPU pods stay Pending.
- :class:`EbsStorageClass`: a default gp3 StorageClass of the EBS CSI driver. EKS (1.30 and later)
  marks no StorageClass as default, so MinIO's claim would never bind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.gpu_pool_spec import GPU_POOL_LABEL
from components.podspec import container_security, gpu_tolerations, with_ephemeral_storage

DEVICE_PLUGIN_NAME = "nvidia-device-plugin-daemonset"
DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
EBS_CSI_PROVISIONER = "ebs.csi.aws.com"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def pool_affinity(pools: Sequence[str]) -> dict[str, object]:
    """Node affinity for the nodes of ``pools`` (by our pool label)."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": GPU_POOL_LABEL, "operator": "In", "values": list(pools)}]}]}}}


def device_plugin_pod_spec(image: str, pools: Sequence[str]) -> dict[str, object]:
    """NVIDIA's static manifest (v0.17.1), restricted to ``pools``."""
    return {
        "tolerations": gpu_tolerations(),
        "affinity": pool_affinity(pools),
        "priorityClassName": "system-node-critical",
        "containers": [{
            "name": "nvidia-device-plugin-ctr",
            "image": image,
            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
            "securityContext": container_security(read_only_root=False),
            "resources": with_ephemeral_storage({"requests": {"cpu": "10m", "memory": "32Mi"},
                                                 "limits": {"memory": "128Mi"}}, []),
            "volumeMounts": [{"name": "device-plugin", "mountPath": DEVICE_PLUGIN_DIR}],
        }],
        "volumes": [{"name": "device-plugin", "hostPath": {"path": DEVICE_PLUGIN_DIR}}],
    }


@dataclass(frozen=True, kw_only=True)
class NvidiaDevicePluginArgs:
    """Inputs for NvidiaDevicePlugin."""

    image: str
    """Pinned device-plugin image, e.g. nvcr.io/nvidia/k8s-device-plugin:v0.17.1."""
    pools: Sequence[str]
    """GPU pools (``llm-ab/gpu-pool`` values) whose AMI lacks the plugin."""
    namespace: str = "kube-system"

    def __post_init__(self) -> None:
        if not self.pools:
            raise ValueError("pools must not be empty")


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """The NVIDIA device-plugin DaemonSet, tolerating the GPU taint, on the given pools only."""

    daemonset_name: pulumi.Output[str]

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:compute:NvidiaDevicePlugin", name, None, opts)
        selector = {"name": "nvidia-device-plugin-ds"}
        daemonset = k8s.apps.v1.DaemonSet(
            f"{name}-ds",
            metadata={"name": DEVICE_PLUGIN_NAME, "namespace": args.namespace,
                      "labels": {**selector, "app.kubernetes.io/managed-by": "pulumi",
                                 "app.kubernetes.io/part-of": "llm-ab"}},
            spec={
                "selector": {"matchLabels": selector},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {"metadata": {"labels": selector},
                             "spec": device_plugin_pod_spec(args.image, args.pools)},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.daemonset_name = daemonset.metadata.name
        self.register_outputs({"daemonset_name": self.daemonset_name})


@dataclass(frozen=True, kw_only=True)
class EbsStorageClassArgs:
    """Inputs for EbsStorageClass."""

    name: str = "gp3"
    retain: bool = True
    """Reclaim policy Retain: deleting a claim keeps its EBS volume (the weights)."""


class EbsStorageClass(pulumi.ComponentResource):
    """The cluster's default StorageClass: encrypted gp3 volumes bound where the pod lands."""

    storage_class_name: pulumi.Output[str]

    def __init__(self, name: str, args: EbsStorageClassArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:storage:EbsStorageClass", name, None, opts)
        storage_class = k8s.storage.v1.StorageClass(
            f"{name}-sc",
            metadata={"name": args.name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            provisioner=EBS_CSI_PROVISIONER,
            parameters={"type": "gp3", "encrypted": "true"},
            reclaim_policy="Retain" if args.retain else "Delete",
            # An EBS volume lives in one zone: create it where the pod is scheduled.
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.storage_class_name = storage_class.metadata.name
        self.register_outputs({"storage_class_name": self.storage_class_name})
