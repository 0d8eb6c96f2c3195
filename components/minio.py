"""MinIO object store holding the model weights: generated credentials, protected volume, bucket."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.credentials import CredentialGenerator, credential
from components.naming import (
    MINIO_SERVICE,
    S3_CLIENT_LABEL,
    S3_PORT,
    WEIGHTS_VOLUME_ANNOTATION,
    common_labels,
    minio_selector,
    service_url,
)
from components.netpol import egress_to, ingress_from, pods_peer, tcp
from components.podspec import container_security, http_probe, pod_security, tmp_volume, with_ephemeral_storage
from components.weights_volume import claim_name, claim_spec, weights_keep
from policy.contract import WEIGHTS_COMPONENT

DATA_CLAIM = claim_name(1)
"""Fixed name of the weights claim (of the first volume generation)."""
READ_POLICY = "llm-ab-read"
WRITE_POLICY = "llm-ab-write"


def bucket_policy(bucket: str, *, write: bool) -> dict[str, Any]:
    """IAM-style policy scoped to one bucket: list+get for readers, plus put/delete for writers."""
    actions = ["s3:GetObject"]
    if write:
        actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
             "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Effect": "Allow", "Action": actions, "Resource": [f"arn:aws:s3:::{bucket}/*"]},
        ],
    }


BUCKET_SCRIPT_TOOLS = ("mc", "sleep", "tr")
"""The only programs the bucket Job's script runs (the rest is ``sh`` itself): the MinIO image is UBI
micro plus ``mc``, with coreutils but no grep, sed or jq."""


def _has_policy(user: str, policy: str) -> str:
    """Shell: the user ``$<user>`` has ``policy`` attached (``mc admin user info`` names it)."""
    return f'case "$(mc admin user info s3 "${user}")" in *{policy}*) ;; *) false ;; esac'


def bucket_init_script(bucket: str) -> str:
    """Shell run by the bucket Job: wait for MinIO, create the bucket and two scoped users, and remove
    the users an earlier run made that the users Secret no longer holds (rotated-out keys).

    Every step is idempotent, so a replaced Job re-runs safely. The users this program made are the
    ones with its policies (``READ_POLICY``, ``WRITE_POLICY``) attached: nothing else attaches them, so
    the root user and any user made by hand are left alone. It runs only :data:`BUCKET_SCRIPT_TOOLS`;
    scratch files go to ``$TMPDIR`` (``/tmp``).
    """
    read_policy = json.dumps(bucket_policy(bucket, write=False))
    write_policy = json.dumps(bucket_policy(bucket, write=True))
    return "\n".join([
        "set -eu",
        'tmp="${TMPDIR:-/tmp}"',
        'mc alias set s3 "$S3_ENDPOINT" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null',
        "tries=0; until mc ready s3 >/dev/null 2>&1; do tries=$((tries+1));"
        ' [ "$tries" -lt 150 ] || { echo "MinIO at $S3_ENDPOINT not ready after 300s" >&2; exit 1; }; sleep 2; done',
        f"mc mb --ignore-existing s3/{bucket}",
        f"printf '%s' '{read_policy}' > \"$tmp/read.json\"",
        f"printf '%s' '{write_policy}' > \"$tmp/write.json\"",
        f'mc admin policy create s3 {READ_POLICY} "$tmp/read.json"',
        f'mc admin policy create s3 {WRITE_POLICY} "$tmp/write.json"',
        'mc admin user add s3 "$READER_ACCESS_KEY" "$READER_SECRET_KEY"',
        'mc admin user add s3 "$WRITER_ACCESS_KEY" "$WRITER_SECRET_KEY"',
        # attach fails when the policy is attached already (a re-run): then it must be.
        f'mc admin policy attach s3 {READ_POLICY} --user "$READER_ACCESS_KEY" 2>/dev/null'
        f' || {_has_policy("READER_ACCESS_KEY", READ_POLICY)}',
        f'mc admin policy attach s3 {WRITE_POLICY} --user "$WRITER_ACCESS_KEY" 2>/dev/null'
        f' || {_has_policy("WRITER_ACCESS_KEY", WRITE_POLICY)}',
        # A rotation (new credentials) re-runs this Job, and the old users would keep working unless removed.
        # `mc --json` prints one object per user, indented or not: without whitespace, one object a line
        # (access keys and policy names hold no spaces, quotes or braces).
        'mc admin user list s3 --json > "$tmp/users.json"',
        "tr -d ' \\t\\r\\n' < \"$tmp/users.json\" | tr '}' '\\n' > \"$tmp/users.txt\"",
        "removed=0",
        'while IFS= read -r user || [ -n "$user" ]; do',
        """  case $user in *'"accessKey":"'*'"policyName":"'*) ;; *) continue ;; esac""",
        """  key=${user#*'"accessKey":"'}; key=${key%%'"'*}""",
        """  policies=${user#*'"policyName":"'}; policies=${policies%%'"'*}""",
        f'  case ",$policies," in *,{READ_POLICY},*|*,{WRITE_POLICY},*) ;; *) continue ;; esac',
        '  if [ "$key" = "$READER_ACCESS_KEY" ] || [ "$key" = "$WRITER_ACCESS_KEY" ]; then continue; fi',
        '  mc admin user remove s3 "$key" >/dev/null',
        "  removed=$((removed+1))",
        'done < "$tmp/users.txt"',
        f'echo "bucket {bucket} ready with scoped reader and writer users; $removed rotated-out user(s) removed"',
    ])


@dataclass(frozen=True, kw_only=True)
class MinioStoreArgs:
    """Inputs for MinioStore."""

    namespace: pulumi.Input[str]
    """Namespace of all children (pass ``ns.metadata.name``)."""
    stack: str
    image: str
    """MinIO server image, pinned; it also ships ``mc`` for the bucket Job."""
    bucket: str
    size: str = "20Gi"
    """Size of the data volume."""
    storage_class: str | None = None
    protect: bool = True
    """Keep the data volume when the stack is destroyed."""
    volume_generation: int = 1
    """Which weights volume: the claim is ``minio-data`` (1) or ``minio-data-<n>``."""
    allow_replace: bool = False
    """Lift the claim's ``protect`` for this update so a new generation (or namespace, or class) may
    replace it; the old claim is retained in the cluster. The deploy driver refuses a replacement
    without it (deploy/volume.py)."""
    credential_generator: CredentialGenerator = CredentialGenerator.RANDOM
    """What generates the root and user credentials (components/credentials.py)."""
    extra_ingress_from: Sequence[dict[str, Any]] = field(default_factory=tuple)
    """NetworkPolicy peers besides our labelled S3 clients (e.g. Datashim's csi-s3 namespace)."""


class MinioStore(pulumi.ComponentResource):
    """A single-node MinIO with a protected volume, a bucket and scoped reader/writer users."""

    endpoint: pulumi.Output[str]
    """In-cluster S3 endpoint URL, e.g. http://minio.llm-ab.svc.cluster.local:9000."""
    bucket: pulumi.Output[str]
    root_user: pulumi.Output[str]
    """Root user (secret)."""
    root_password: pulumi.Output[str]
    """Root password (secret)."""
    reader_access_key: pulumi.Output[str]
    """Access key of the read-only user that Datashim mounts with (secret)."""
    reader_secret_key: pulumi.Output[str]
    writer_access_key: pulumi.Output[str]
    """Access key of the read-write user the staging Jobs use (secret)."""
    writer_secret_key: pulumi.Output[str]
    writer_secret_name: pulumi.Output[str]
    """Kubernetes Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of the writer."""
    data_claim_name: pulumi.Output[str]
    volume_id: pulumi.Output[str]
    """The claim's uid: a new volume has a new one (the bucket and staging Jobs carry it)."""

    def __init__(self, name: str, args: MinioStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:storage:MinioStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**common_labels(WEIGHTS_COMPONENT, args.stack), "app.kubernetes.io/name": "minio"}
        selector = minio_selector(args.stack)

        def generated(role: str, length: int) -> pulumi.Output[str]:
            return credential(f"{name}-{role}", length, args.credential_generator, opts=child)

        root_user, root_password = generated("root-user", 20), generated("root-password", 40)
        reader_key, reader_secret = generated("reader-key", 20), generated("reader-secret", 40)
        writer_key, writer_secret = generated("writer-key", 20), generated("writer-secret", 40)

        root_secret = k8s.core.v1.Secret(
            f"{name}-root",
            metadata={"namespace": args.namespace, "labels": labels},
            string_data={"MINIO_ROOT_USER": root_user, "MINIO_ROOT_PASSWORD": root_password},
            opts=child,
        )
        users_secret = k8s.core.v1.Secret(
            f"{name}-users",
            metadata={"namespace": args.namespace, "labels": labels},
            string_data={
                "READER_ACCESS_KEY": reader_key, "READER_SECRET_KEY": reader_secret,
                "WRITER_ACCESS_KEY": writer_key, "WRITER_SECRET_KEY": writer_secret,
            },
            opts=child,
        )
        writer_env = k8s.core.v1.Secret(
            f"{name}-writer",
            metadata={"namespace": args.namespace, "labels": labels},
            string_data={"AWS_ACCESS_KEY_ID": writer_key, "AWS_SECRET_ACCESS_KEY": writer_secret},
            opts=child,
        )

        # Weights are data. protect: no update may replace the claim and `make destroy` (which
        # destroys with --exclude-protected) keeps it, with its namespace; retain_on_delete: a plain
        # `pulumi destroy` that got past protection still leaves the volume in the cluster. The fixed
        # name lets a later stack adopt a retained claim; a new generation is a new name, so the new
        # claim is created before the old one leaves the stack (retained). allow_replace lifts protect
        # for that one update. The namespace is kept by the same decision (weights_keep).
        keep = weights_keep(protect=args.protect, allow_replace=args.allow_replace, minio=True).claim
        data = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data",
            metadata={"name": claim_name(args.volume_generation), "namespace": args.namespace, "labels": labels},
            spec=claim_spec(args.size, args.storage_class),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=keep.retain_on_delete, protect=keep.protect),
        )
        volume_id = data.metadata.uid

        endpoint = pulumi.Output.from_input(args.namespace).apply(
            lambda ns: service_url(MINIO_SERVICE, ns, S3_PORT))

        server_volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": data.metadata.name}}, tmp_volume()]
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deploy",
            metadata={"namespace": args.namespace, "labels": labels},
            spec={
                "replicas": 1,
                # One RWO volume: never run two servers on it, even during a rollout.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": {**labels, **selector}},
                    "spec": {
                        "securityContext": pod_security(),
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "containers": [{
                            "name": "minio",
                            "image": args.image,
                            "args": ["server", "/data", "--address", f":{S3_PORT}", "--certs-dir", "/tmp/certs"],
                            "env": [
                                {"name": "MINIO_BROWSER", "value": "off"},
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            "envFrom": [{"secretRef": {"name": root_secret.metadata.name}}],
                            "ports": [{"name": "s3", "containerPort": S3_PORT}],
                            "readinessProbe": http_probe("/minio/health/ready", "s3", period=10, failures=3),
                            "livenessProbe": http_probe("/minio/health/live", "s3", period=30, failures=3,
                                                        timeout=10, initial_delay=10),
                            "resources": with_ephemeral_storage({"requests": {"cpu": "250m", "memory": "512Mi"},
                                                                 "limits": {"cpu": "2", "memory": "2Gi"}},
                                                                server_volumes),
                            "securityContext": container_security(),
                            "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                             {"name": "tmp", "mountPath": "/tmp"}],
                        }],
                        "volumes": server_volumes,
                    },
                },
            },
            opts=child,
        )

        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": MINIO_SERVICE, "namespace": args.namespace, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "s3", "port": S3_PORT, "targetPort": "s3"}],
            },
            opts=child,
        )

        s3_clients = {S3_CLIENT_LABEL: "true"}
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"namespace": args.namespace, "labels": labels},
            spec=ingress_from(selector, [([pods_peer(s3_clients), *args.extra_ingress_from], tcp(S3_PORT))]),
            opts=child,
        )
        # The namespace denies egress: the labelled S3 clients (bucket and staging Jobs) may reach MinIO.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-clients-netpol",
            metadata={"namespace": args.namespace, "labels": labels},
            spec=egress_to(s3_clients, [pods_peer(selector)], tcp(S3_PORT)),
            opts=child,
        )

        job_tmp = tmp_volume(size="64Mi")
        bucket_job = k8s.batch.v1.Job(
            f"{name}-bucket",
            metadata={"namespace": args.namespace, "labels": labels},
            spec={
                "backoffLimit": 4,
                "activeDeadlineSeconds": 900,
                "template": {
                    # The claim's uid: a new volume is a new Job, so the bucket and users are created in it.
                    "metadata": {"labels": {**labels, S3_CLIENT_LABEL: "true"},
                                 "annotations": {WEIGHTS_VOLUME_ANNOTATION: volume_id}},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "securityContext": pod_security(),
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "containers": [{
                            "name": "mc",
                            "image": args.image,
                            "command": ["/bin/sh", "-c", bucket_init_script(args.bucket)],
                            "env": [
                                {"name": "S3_ENDPOINT", "value": endpoint},
                                {"name": "MC_CONFIG_DIR", "value": "/tmp/.mc"},
                            ],
                            "envFrom": [{"secretRef": {"name": root_secret.metadata.name}},
                                        {"secretRef": {"name": users_secret.metadata.name}}],
                            "resources": with_ephemeral_storage({"requests": {"cpu": "50m", "memory": "64Mi"},
                                                                 "limits": {"cpu": "500m", "memory": "256Mi"}},
                                                                [job_tmp]),
                            "securityContext": container_security(),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }],
                        "volumes": [job_tmp],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment, service]),
        )
        self.bucket_job = bucket_job

        self.endpoint = endpoint
        self.bucket = pulumi.Output.from_input(args.bucket)
        self.root_user = pulumi.Output.secret(root_user)
        self.root_password = pulumi.Output.secret(root_password)
        self.reader_access_key = pulumi.Output.secret(reader_key)
        self.reader_secret_key = pulumi.Output.secret(reader_secret)
        self.writer_access_key = pulumi.Output.secret(writer_key)
        self.writer_secret_key = pulumi.Output.secret(writer_secret)
        self.writer_secret_name = writer_env.metadata.name
        self.data_claim_name = data.metadata.name
        self.volume_id = volume_id
        self.register_outputs({
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "root_user": self.root_user,
            "root_password": self.root_password,
            "writer_secret_name": self.writer_secret_name,
            "data_claim_name": self.data_claim_name,
        })
