"""Datashim Dataset that mounts the weights bucket read-only into pods (and, optionally, Datashim).

Facts this relies on: group ``datashim.io/v1alpha1``; every ``spec.local``
value is a string; the credentials Secret must use the keys ``accessKeyID``/``secretAccessKey`` and
must NOT be named like the Dataset (the operator's finalizer deletes the Dataset-named Secret);
the webhook acts only in namespaces labelled ``monitor-pods-datasets=enabled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.naming import common_labels
from components.podspec import gpu_tolerations

NAMESPACE_OPT_IN_LABELS = {"monitor-pods-datasets": "enabled"}
"""Namespace labels that make Datashim's webhook mount Datasets into pods."""

DATASHIM_MANIFEST_URL = "https://raw.githubusercontent.com/datashim-io/datashim/{version}/release-tools/manifests/dlf.yaml"


def dataset_local_spec(*, endpoint: str, bucket: str, secret_name: str) -> dict[str, str]:
    """``spec.local`` of a read-only COS Dataset. Every value is a string, as the CRD demands."""
    return {
        "type": "COS",
        "endpoint": endpoint,
        "bucket": bucket,
        "secret-name": secret_name,
        "readonly": "true",
        # The bucket is created by our bucket Job; a missing bucket should surface, not be created.
        "provision": "false",
        "region": "",
    }


def credentials_secret_name(dataset: str) -> str:
    """Never the Dataset's own name: Datashim deletes the Secret named like the Dataset."""
    return f"{dataset}-s3-credentials"


def pin_datashim_images(obj: dict[str, Any], version: str) -> None:
    """Rewrite the release manifest's ``:latest`` images to the release tag (mutates ``obj``)."""
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        image = container.get("image", "")
        if image.endswith(":latest"):
            container["image"] = image[: -len(":latest")] + f":{version}"
            container["imagePullPolicy"] = "IfNotPresent"


@dataclass(frozen=True, kw_only=True)
class DatashimDatasetArgs:
    """Inputs for DatashimDataset."""

    namespace: pulumi.Input[str]
    """Namespace of the Dataset; must carry NAMESPACE_OPT_IN_LABELS."""
    stack: str
    dataset_name: str
    """Explicit name: pods refer to it in ``dataset.0.id`` and mount it at /mnt/datasets/<name>."""
    endpoint: pulumi.Input[str]
    """S3 endpoint URL including the scheme."""
    bucket: pulumi.Input[str]
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    await_provision: bool = True
    """Wait until the operator reports the Dataset's volume provisioned."""
    install: bool = False
    """Also install the Datashim operator from its pinned release manifest."""
    version: str = "0.4.1"
    operator_namespace: str = "dlf"


class DatashimDataset(pulumi.ComponentResource):
    """A read-only COS Dataset over the weights bucket, with its credentials Secret."""

    dataset_name: pulumi.Output[str]
    secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: DatashimDatasetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:storage:DatashimDataset", name, None, opts)
        labels = common_labels("dataset", args.stack)

        operator: list[pulumi.Resource] = []
        if args.install:
            operator = self._install_operator(name, args)

        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={
                "name": credentials_secret_name(args.dataset_name),
                "namespace": args.namespace,
                "labels": labels,
            },
            string_data={"accessKeyID": args.access_key_id, "secretAccessKey": args.secret_access_key},
            opts=pulumi.ResourceOptions(parent=self),
        )

        annotations: dict[str, str] = {}
        if args.await_provision:
            # pulumi-kubernetes >= 4.18 waits on custom resources only when told what to wait for.
            annotations["pulumi.com/waitFor"] = "jsonpath={.status.provision.status}=OK"
        local = pulumi.Output.all(args.endpoint, args.bucket, secret.metadata.name).apply(
            lambda v: dataset_local_spec(endpoint=v[0], bucket=v[1], secret_name=v[2]))
        dataset = k8s.apiextensions.CustomResource(
            f"{name}-dataset",
            api_version="datashim.io/v1alpha1",
            kind="Dataset",
            metadata={
                "name": args.dataset_name,
                "namespace": args.namespace,
                "labels": labels,
                # No empty map: the API server drops it, and the engine would report a diff on every preview.
                **({"annotations": annotations} if annotations else {}),
            },
            spec={"local": local},
            opts=pulumi.ResourceOptions(parent=self, depends_on=operator),
        )

        self.dataset = dataset
        self.dataset_name = pulumi.Output.from_input(args.dataset_name)
        self.secret_name = secret.metadata.name
        self.register_outputs({"dataset_name": self.dataset_name, "secret_name": self.secret_name})

    def _install_operator(self, name: str, args: DatashimDatasetArgs) -> list[pulumi.Resource]:
        """Datashim's release manifest, pinned to ``args.version``, into its own namespace."""
        ns = k8s.core.v1.Namespace(
            f"{name}-operator-ns",
            metadata={
                "name": args.operator_namespace,
                # csi-s3 is privileged (FUSE mounts).
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

        def transform(targs: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
            props: dict[str, Any] = dict(targs.props)
            kind = targs.type_.rsplit(":", 1)[-1]
            pin_datashim_images(props, args.version)
            opts = targs.opts
            if kind == "DaemonSet":
                # Datashim's DaemonSets carry no tolerations, so volumes would not mount on tainted
                # GPU nodes where TGI runs.
                tmpl = props.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})
                tmpl["tolerations"] = [*tmpl.get("tolerations", []), *gpu_tolerations()]
            if kind in ("MutatingWebhookConfiguration", "Secret"):
                # The generate-keys init container rewrites the webhook CA bundle and the TLS Secret;
                # re-applying the manifest's stubs would break the webhook.
                opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["*"]))
            return pulumi.ResourceTransformResult(props=props, opts=opts)

        manifest = k8s.yaml.v2.ConfigFile(
            f"{name}-operator",
            file=DATASHIM_MANIFEST_URL.format(version=args.version),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns], transforms=[transform]),
        )
        return [manifest]
