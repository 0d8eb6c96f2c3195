"""What the embedded local cluster promises (scripts/local-cluster) of its simulated side: kwok nodes (one
with GPUs) where pods of images nobody has turn Ready and Jobs Complete, PVCs that bind, and the
Datashim/KServe CRD schemas. What really runs is tests/integration/test_real_node.py's."""

from __future__ import annotations

import time

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NS = "it-cluster"

WORKLOADS = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: gpu, namespace: {NS}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: gpu}}}}
  template:
    metadata: {{labels: {{app: gpu}}}}
    spec:
      nodeSelector: {{nvidia.com/gpu.present: "true"}}
      tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
      containers:
      - name: c
        image: example.invalid/tgi:1
        resources: {{limits: {{nvidia.com/gpu: "1"}}}}
        readinessProbe: {{httpGet: {{path: /health, port: 80}}}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: job, namespace: {NS}}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {{type: kwok}}
      tolerations: [{{key: llm-ab.dev/simulated, operator: Exists, effect: NoSchedule}}]
      initContainers: [{{name: init, image: example.invalid/busybox}}]
      containers: [{{name: c, image: example.invalid/busybox}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: rwo, namespace: {NS}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 5Gi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: rox, namespace: {NS}}}
spec:
  accessModes: [ReadOnlyMany]
  resources: {{requests: {{storage: 1Gi}}}}
"""


def _until(fn, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def test_nodes_include_a_gpu_node(local_cluster) -> None:
    nodes = local_cluster.get_json("nodes")["items"]
    ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    assert len(ready) == len(nodes) >= 2
    assert any(n["status"]["allocatable"].get("nvidia.com/gpu") for n in nodes)


def test_workloads_become_ready_complete_and_bound(local_cluster) -> None:
    local_cluster.kubectl("apply", "-f", "-", input=WORKLOADS)

    def deploy_ready():
        st = local_cluster.get_json("-n", NS, "deployment/gpu").get("status", {})
        return st.get("readyReplicas") == 2

    def job_complete():
        conds = local_cluster.get_json("-n", NS, "job/job").get("status", {}).get("conditions", [])
        return any(c["type"] == "Complete" and c["status"] == "True" for c in conds)

    def pvcs_bound():
        items = local_cluster.get_json("-n", NS, "pvc")["items"]
        return len(items) == 2 and all(p.get("status", {}).get("phase") == "Bound" for p in items)

    assert _until(deploy_ready), "Deployment with GPU limits did not become ready"
    assert _until(job_complete), "Job did not complete"
    assert _until(pvcs_bound), "PVCs did not bind"
    pods = local_cluster.get_json("-n", NS, "pods", "-l", "app=gpu")["items"]
    assert all(p["spec"]["nodeName"].startswith("kwok-gpu") and p["status"].get("podIP") for p in pods)


def test_datashim_dataset_schema(local_cluster) -> None:
    ok = {"apiVersion": "datashim.io/v1alpha1", "kind": "Dataset",
          "metadata": {"name": "weights", "namespace": "default"},
          "spec": {"local": {"type": "COS", "bucket": "b", "endpoint": "http://minio:9000",
                             "secret-name": "creds", "readonly": "true", "provision": "true"}}}
    local_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(ok))
    bad = dict(ok, spec={"local": {"type": "COS", "readonly": True}})
    proc = local_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert proc.returncode != 0 and "must be of type string" in proc.stderr


def test_kserve_schemas(local_cluster) -> None:
    runtime = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
               "metadata": {"name": "mlserver-1.x", "namespace": "default"},
               "spec": {"supportedModelFormats": [{"name": "sklearn", "version": "0", "autoSelect": True}],
                        "multiModel": True, "grpcEndpoint": "port:8085", "grpcDataEndpoint": "port:8001",
                        "builtInAdapter": {"serverType": "mlserver", "runtimeManagementPort": 8001,
                                           "memBufferBytes": 134217728, "modelLoadingTimeoutMillis": 90000},
                        "containers": [{"name": "mlserver", "image": "seldonio/mlserver:1.3.2",
                                        "env": [{"name": "MLSERVER_GRPC_PORT", "value": "8001"}]}]}}
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "sk", "namespace": "default",
                         "annotations": {"serving.kserve.io/deploymentMode": "ModelMesh"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "runtime": "mlserver-1.x",
                                             "storage": {"key": "localMinIO", "path": "sklearn/m.joblib"}}}}}
    local_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all([runtime, isvc]))
    no_containers = dict(runtime, spec={"multiModel": True})
    proc = local_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(no_containers),
                                 check=False)
    assert proc.returncode != 0 and "containers" in proc.stderr
    no_format = dict(isvc, spec={"predictor": {"model": {"modelFormat": {"version": "1"}}}})
    proc = local_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(no_format), check=False)
    assert proc.returncode != 0 and "modelFormat.name" in proc.stderr
