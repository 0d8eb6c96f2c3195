"""The embedded cluster's real node (scripts/real-node): containers really run there, beside kwok's
simulated nodes, and the host is left as it was.

Every check here would fail on a simulated node: a pod's own output in its log, an exit code, an HTTP
answer through a ClusterIP and a DNS name, MinIO refusing a write, objects staged into a bucket.
Skipped when the cluster runs without a real node (LLMAB_REAL_NODE=0)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from components.minio import bucket_init_script
from tests.harness import shell_assignments
from tests.integration.conftest import SCRIPTS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.environ.get("LLMAB_REAL_NODE") == "0", reason="LLMAB_REAL_NODE=0: no real node"),
]

NS = "real-node-it"


IMAGES = shell_assignments(str(SCRIPTS / "images"), "refs")


@pytest.fixture(scope="module")
def node(local_cluster) -> dict[str, str]:  # noqa: ARG001 - the node exists once the cluster is up
    from tests.integration.conftest import CLUSTER_NAME

    return shell_assignments(str(SCRIPTS / "real-node"), "--name", CLUSTER_NAME, "plan")


@pytest.fixture(scope="module")
def ns(local_cluster) -> Iterator[str]:
    local_cluster.kubectl("create", "namespace", NS, check=False)
    for _ in range(30):  # the default ServiceAccount comes asynchronously
        if local_cluster.kubectl("-n", NS, "get", "sa", "default", check=False).returncode == 0:
            break
        time.sleep(1)
    yield NS
    local_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def until(fn: Callable[[], Any], timeout: float = 120, every: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def apply(cluster, *objs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(list(objs), sort_keys=False))


def job_state(cluster, ns: str, name: str) -> str:
    conds = cluster.get_json("-n", ns, f"job/{name}").get("status", {}).get("conditions", [])
    for c in conds:
        if c["status"] == "True" and c["type"] in ("Complete", "Failed"):
            return c["type"]
    return ""


def shell_job(name: str, script: str, *, image: str | None = None, env: dict[str, str] | None = None,
              backoff: int = 0) -> dict[str, Any]:
    """A Job of one shell container on the real node, hardened like ours (non-root, read-only root)."""
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS},
        "spec": {"backoffLimit": backoff, "activeDeadlineSeconds": 600, "template": {
            "metadata": {"labels": {"test": name}},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000},
                "containers": [{
                    "name": "main", "image": image or IMAGES["MINIO_IMAGE"], "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            }}}}


def run_job(cluster, job: dict[str, Any], timeout: float = 180) -> tuple[str, str]:
    name = job["metadata"]["name"]
    cluster.kubectl("-n", NS, "delete", "job", name, "--ignore-not-found", "--cascade=foreground", "--wait=true",
                    check=False)
    apply(cluster, job)
    state = until(lambda: job_state(cluster, NS, name), timeout)
    return state, cluster.kubectl("-n", NS, "logs", f"job/{name}", "--tail=300", check=False).stdout


def test_the_real_node_is_ready_and_the_simulated_nodes_are_tainted(local_cluster, node) -> None:
    nodes = {n["metadata"]["name"]: n for n in local_cluster.get_json("nodes")["items"]}
    real = nodes[node["NODE_NAME"]]
    assert real["metadata"]["labels"]["llm-ab.dev/node"] == "real"
    assert real["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    assert real["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in real["status"]["conditions"])
    assert not real["spec"].get("taints")
    simulated = [n for name, n in nodes.items() if name != node["NODE_NAME"]]
    assert simulated, "the GPU nodes are kwok's"
    for n in simulated:
        assert n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake", n["metadata"]["name"]
        assert n["spec"]["taints"][0]["effect"] == "NoSchedule", n["metadata"]["name"]


def test_a_pod_runs_its_command_and_its_exit_code_is_the_real_one(local_cluster, ns, node) -> None:
    state, out = run_job(local_cluster, shell_job("hello", 'echo "hello from $(hostname) uid $(id -u)"'))
    assert state == "Complete", out
    assert re.search(r"hello from hello-\w+ uid 1000", out), out
    pod = local_cluster.get_json("-n", ns, "pods", "-l", "test=hello")["items"][0]
    assert pod["spec"]["nodeName"] == node["NODE_NAME"]
    assert pod["status"]["podIP"].startswith(node["POD_CIDR"].rsplit(".", 2)[0] + ".")

    state, _ = run_job(local_cluster, shell_job("fails", "echo failing on purpose; exit 3"))
    assert state == "Failed"
    pod = local_cluster.get_json("-n", ns, "pods", "-l", "test=fails")["items"][0]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


WEB = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
         "metadata": {"labels": {"app": "web"}},
         "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                  "containers": [{
                      "name": "httpd", "image": IMAGES["MINIO_IMAGE"], "imagePullPolicy": "Never",
                      "command": ["/bin/sh", "-c",
                                  'mkdir -p /tmp/www && echo "served by $(hostname)" > /tmp/www/index.html '
                                  "&& exec httpd -f -p 8080 -h /tmp/www"],
                      "ports": [{"containerPort": 8080}],
                      "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                      "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                  "terminationGracePeriodSeconds": 1,
                  "volumes": [{"name": "tmp", "emptyDir": {}}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
]


def test_a_service_answers_through_its_cluster_ip_and_its_dns_name_from_another_pod(local_cluster, ns) -> None:
    apply(local_cluster, *WEB)
    local_cluster.kubectl("-n", ns, "rollout", "status", "deploy/web", "--timeout=120s")
    ip = local_cluster.get_json("-n", ns, "service/web")["spec"]["clusterIP"]
    fetch = ("import urllib.request as u\n"
             f"for url in ['http://{ip}/', 'http://web.{ns}.svc.cluster.local/'] * 8:\n"
             "    print(u.urlopen(url, timeout=5).read().decode().strip())\n")
    script = f"python3 -c \"{fetch}\""
    state, out = run_job(local_cluster, shell_job("client", script, image=IMAGES["JOB_PYTHON_IMAGE"], backoff=1))
    assert state == "Complete", out
    served_by = set(re.findall(r"served by (web-\S+)", out))
    assert len(re.findall("served by", out)) == 16, out
    assert len(served_by) == 2, f"both replicas answer through the Service: {served_by}"


CREDS = {"MINIO_ROOT_USER": "root-it", "MINIO_ROOT_PASSWORD": "root-it-password-1",
         "READER_ACCESS_KEY": "reader-it", "READER_SECRET_KEY": "reader-it-secret-1",
         "WRITER_ACCESS_KEY": "writer-it", "WRITER_SECRET_KEY": "writer-it-secret-1"}
ENDPOINT = f"http://minio.{NS}.svc.cluster.local:9000"


@pytest.fixture(scope="module")
def minio(local_cluster, ns) -> str:
    """MinIO from our image, its bucket and users made by the program's own bucket script in a real Job."""
    apply(local_cluster, *minio_objects(CREDS))
    local_cluster.kubectl("-n", ns, "rollout", "status", "deploy/minio", "--timeout=120s")
    state, out = run_job(local_cluster, shell_job(
        "bucket", bucket_init_script("model-weights"),
        env={"S3_ENDPOINT": ENDPOINT, "MC_CONFIG_DIR": "/tmp/.mc", **CREDS}, backoff=2))
    assert state == "Complete", out
    assert "bucket model-weights ready with scoped reader and writer users" in out
    return ENDPOINT


def test_minio_from_our_image_creates_the_bucket_and_scoped_users_and_refuses_a_reader_write(
        local_cluster, minio) -> None:
    endpoint, creds = minio, CREDS
    check = "\n".join([
        "set -u; export MC_CONFIG_DIR=/tmp/.mc",
        f'mc alias set w {endpoint} "$WRITER_ACCESS_KEY" "$WRITER_SECRET_KEY" >/dev/null',
        f'mc alias set r {endpoint} "$READER_ACCESS_KEY" "$READER_SECRET_KEY" >/dev/null',
        "echo weights > /tmp/w.txt",
        "mc cp -q /tmp/w.txt w/model-weights/m/w.txt >/dev/null && echo WRITER-WRITE-OK",
        "mc cat r/model-weights/m/w.txt && echo READER-READ-OK",
        "mc cp -q /tmp/w.txt r/model-weights/m/r.txt >/dev/null 2>&1"
        " && echo READER-WRITE-ALLOWED || echo READER-WRITE-REFUSED",
        "mc ls r/ 2>&1 | grep -q model-weights && echo READER-LISTS-BUCKETS || true",
    ])
    state, out = run_job(local_cluster, shell_job("access", check, env=creds))
    assert state == "Complete", out
    assert "WRITER-WRITE-OK" in out and "READER-READ-OK" in out, out
    assert "READER-WRITE-REFUSED" in out and "READER-WRITE-ALLOWED" not in out, out


def minio_objects(creds: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "minio-root", "namespace": NS},
         "stringData": {k: creds[k] for k in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "minio", "namespace": NS},
         "spec": {"selector": {"matchLabels": {"app": "minio"}}, "template": {
             "metadata": {"labels": {"app": "minio"}},
             "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
                      "containers": [{
                          "name": "minio", "image": IMAGES["MINIO_IMAGE"], "imagePullPolicy": "Never",
                          "args": ["server", "/data", "--address", ":9000", "--certs-dir", "/tmp/certs"],
                          "envFrom": [{"secretRef": {"name": "minio-root"}}],
                          "readinessProbe": {"httpGet": {"path": "/minio/health/ready", "port": 9000},
                                             "periodSeconds": 2},
                          "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
                          "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                           {"name": "tmp", "mountPath": "/tmp"}]}],
                      "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "minio", "namespace": NS},
         "spec": {"selector": {"app": "minio"}, "ports": [{"port": 9000}]}},
    ]


def test_the_staging_tool_stages_a_pinned_model_into_minio_in_a_real_job(local_cluster, minio, node) -> None:
    """The staging package, installed offline from its hash-locked wheels in our Job image, copies a
    pinned revision from a Hub (a stand-in on the host side of the node's veth) into real MinIO, the
    weights as a multipart upload with S3 SHA-256 checksums, under its lease; the second run proves the
    objects by content against the manifest and copies nothing."""
    from components.joblock import LOCK_NAME
    from components.podspec import pip_then_python
    from tests.staging.test_stage_model import FakeHubServer

    creds = CREDS
    commit = "c" * 40
    # 12 MiB of weights over a 5 MiB multipart threshold: three parts, each checksummed by MinIO itself
    files = {"config.json": b'{"model_type": "qwen2"}\n',
             "model.safetensors": hashlib.sha256(b"w").digest() * (12 * 2**20 // 32),
             "tokenizer.json": b'{"version": "1.0"}\n'}
    hub = FakeHubServer("acme/tiny", commit, files, lfs={"model.safetensors"}, host=node["HOST_IP"])
    try:
        package = {p.name: p.read_text() for p in (SCRIPTS.parent / "staging").glob("*.py")}
        lock = (SCRIPTS.parent / "staging" / LOCK_NAME).read_text()
        apply(local_cluster,
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "staging-tool", "namespace": NS},
               "data": package},
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "staging-lock", "namespace": NS},
               "data": {LOCK_NAME: lock}})
        job = shell_job("stage", "", image=IMAGES["JOB_PYTHON_IMAGE"], env={
            "AWS_ACCESS_KEY_ID": creds["WRITER_ACCESS_KEY"], "AWS_SECRET_ACCESS_KEY": creds["WRITER_SECRET_KEY"],
            "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "HOME": "/tmp"})
        container = job["spec"]["template"]["spec"]["containers"][0]
        container["command"] = pip_then_python(f"/opt/lock/{LOCK_NAME}", "-m staging", name="staging",
                                               pythonpath="/opt")
        container["args"] = ["--repo-id", "acme/tiny", "--revision", commit, "--bucket", "model-weights",
                             "--prefix", "tiny", "--endpoint-url", minio,
                             "--multipart-threshold-mb", "5", "--json"]
        container["volumeMounts"] += [{"name": "tool", "mountPath": "/opt/staging", "readOnly": True},
                                      {"name": "lock", "mountPath": "/opt/lock", "readOnly": True}]
        job["spec"]["template"]["spec"]["volumes"] += [{"name": "tool", "configMap": {"name": "staging-tool"}},
                                                       {"name": "lock", "configMap": {"name": "staging-lock"}}]
        state, out = run_job(local_cluster, job, timeout=300)
        assert state == "Complete", out
        first = summary(out)
        state, out = run_job(local_cluster, job, timeout=300)
        assert state == "Complete", out
        second = summary(out)
    finally:
        hub.close()
    assert (first["status"], first["commit"], sorted(first["uploaded"])) == ("staged", commit, sorted(files)), first
    # the second run finds the manifest of that commit, proven by content, and downloads and copies nothing
    assert (second["status"], second["uploaded"], second["deleted"]) == ("already-staged", [], []), second
    downloads = [p for m, p in hub.requests if m == "GET" and "/resolve/" in p]
    assert sorted(p.rsplit("/", 1)[1] for p in downloads) == sorted(files), hub.requests


def summary(log: str) -> dict[str, Any]:
    """The staging tool's --json summary: the last JSON object of its log, which interleaves the tool's stderr
    lines with its stdout in no fixed order (a line may follow the object)."""
    start = log.rindex("\n{") + 1 if "\n{" in log else log.index("{")
    found, _end = json.JSONDecoder().raw_decode(log, start)
    return dict(found)


def test_the_host_is_untouched(local_cluster, node) -> None:  # noqa: ARG001 - after the cluster is up
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert " /proc/sys/" not in mounts, "kubelet's tunables are files in its own mount namespace only"
    assert " /var/lib/kubelet " not in mounts and " /run/containerd " not in mounts
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert "KUBE-" not in rules, "kube-proxy's rules live in the node's network namespace"
    inside = subprocess.run(["ip", "netns", "exec", node["NETNS"], "iptables-save"], capture_output=True,
                            text=True).stdout
    assert "KUBE-SERVICES" in inside
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "cni0" not in links and node["VETH_HOST"] in links
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert node["POD_CIDR"] not in routes and node["SERVICE_CIDR"] not in routes
