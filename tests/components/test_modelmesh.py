"""ModelMeshServing under mocks, its pure helpers, and the staging tool contract of the ModelMesh track."""

from __future__ import annotations

import json

import pytest
import yaml

from components.modelmesh import (
    ModelMeshServing,
    ModelMeshServingArgs,
    Predictor,
    infer_url,
    routemap_spec,
    serving_runtime_spec,
    storage_config_entry,
)
from components.modelmesh_catalogue import SERVER_TYPES
from components.staging import staging_args
from stacks.modelmesh_settings import ModelMeshSettings
from stacks.modelmesh_track import staged_models
from stacks.settings import parse_settings
from tests.harness import is_secret_value, unsecret
from tests.samples import CANDIDATE, PRIMARY, REV_A, REV_B, minimal

RUNTIME = "kubernetes:serving.kserve.io/v1alpha1:ServingRuntime"
ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "5", "memory": "1Gi"}}
MINIO = {"app.kubernetes.io/name": "minio", "app.kubernetes.io/instance": "t"}


def primary(**overrides) -> Predictor:
    base = dict(name="backend-0", version="v0", model_format="sklearn",
                storage_path=f"wine-quality/{REV_A}/sklearn_model.joblib")
    base.update(overrides)
    return Predictor(**base)


def args(**overrides) -> ModelMeshServingArgs:
    base = dict(
        namespace="exp", stack="t", app="backend", runtime_name="llm-ab-mlserver", server_type="mlserver",
        image="seldonio/mlserver:1.3.2", model_formats=("sklearn", "xgboost", "lightgbm"), resources=RESOURCES,
        primary=primary(), candidate=primary(name="backend-1", version="v1",
                                             storage_path=f"wine-quality/{REV_B}/sklearn_model.joblib"),
        s3_endpoint="http://minio.exp.svc.cluster.local:9000", bucket="model-weights",
        access_key_id="reader-key", secret_access_key="reader-secret", s3_server_selector=MINIO,
    )
    base.update(overrides)
    return ModelMeshServingArgs(**base)


# --- pure helpers --------------------------------------------------------------------------


def test_the_runtime_is_multi_model_with_the_built_in_adapter() -> None:
    spec = serving_runtime_spec(server_type="mlserver", image="seldonio/mlserver:1.3.2",
                                model_formats=["sklearn"], resources=RESOURCES, replicas=1)
    assert spec["multiModel"] is True
    assert spec["grpcEndpoint"] == "port:8085" and spec["grpcDataEndpoint"] == "port:8001"
    assert spec["builtInAdapter"] == {"serverType": "mlserver", "runtimeManagementPort": 8001,
                                      "memBufferBytes": 134217728, "modelLoadingTimeoutMillis": 90000}
    assert spec["supportedModelFormats"] == [{"name": "sklearn", "autoSelect": True}]
    (container,) = spec["containers"]
    # The configured resources, plus the node disk for its logs and writable root (issue 22).
    assert container["name"] == "mlserver" and container["resources"] == {
        "requests": {**RESOURCES["requests"], "ephemeral-storage": "256Mi"}, "limits": RESOURCES["limits"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLSERVER_GRPC_PORT"] == "8001" and env["MLSERVER_HTTP_PORT"] == "8002"  # not 8080: litelinks
    assert env["MLSERVER_HOST"] == "127.0.0.1" and env["MLSERVER_LOAD_MODELS_AT_STARTUP"] == "false"


@pytest.mark.parametrize(("server_type", "data", "management"),
                         [("mlserver", 8001, 8001), ("triton", 8001, 8001), ("ovms", 8001, 8888),
                          ("torchserve", 7070, 7071)])
def test_every_server_type_names_its_container_after_itself(server_type: str, data: int, management: int) -> None:
    known = SERVER_TYPES[server_type]
    spec = serving_runtime_spec(server_type=server_type, image=known.image, model_formats=known.default_formats,
                                resources=RESOURCES, replicas=2)
    assert [c["name"] for c in spec["containers"]] == [server_type]
    assert spec["grpcDataEndpoint"] == f"port:{data}"
    assert spec["builtInAdapter"]["runtimeManagementPort"] == management
    assert spec["builtInAdapter"]["serverType"] == server_type and spec["replicas"] == 2


def test_ovms_listens_on_the_configured_ports() -> None:
    spec = serving_runtime_spec(server_type="ovms", image="openvino/model_server:2022.2", model_formats=["onnx"],
                                resources=RESOURCES, replicas=1, data_port=9001, management_port=9888)
    assert {"--port=9001", "--rest_port=9888"} <= set(spec["containers"][0]["args"])


def test_storage_config_entry_is_the_s3_pullers_json() -> None:
    entry = json.loads(storage_config_entry(endpoint="http://minio:9000", bucket="b", access_key_id="k",
                                            secret_access_key="s"))
    assert entry == {"type": "s3", "access_key_id": "k", "secret_access_key": "s",
                     "endpoint_url": "http://minio:9000", "bucket": "b", "region": "us-east-1"}


def test_routemap_lists_both_versions_like_the_iter8_tutorial() -> None:
    spec = yaml.safe_load(routemap_spec("backend", "exp"))
    assert spec == {"versions": [
        {"resources": [{"gvrShort": "isvc", "name": "backend-0", "namespace": "exp"}]},
        {"resources": [{"gvrShort": "isvc", "name": "backend-1", "namespace": "exp"}]},
    ]}


def test_infer_url_is_the_rest_proxys_only_route() -> None:
    assert infer_url("exp", "backend-0") == "http://modelmesh-serving.exp.svc.cluster.local:8008/v2/models/backend-0/infer"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"server_type": "tgi"}, "server_type must be one of mlserver, triton, ovms, torchserve"),
        ({"model_formats": ("onnx",)}, "model_formats must be some of sklearn, xgboost, lightgbm"),
        ({"primary": primary(model_format="xgboost"), "model_formats": ("sklearn",)},
         "backend-0: format 'xgboost' is not one the runtime supports"),
        ({"candidate": primary()}, "primary and candidate share the name 'backend-0'"),
    ],
)
def test_args_reject_what_modelmesh_cannot_serve(overrides, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        args(**overrides)


# --- the component under mocks -----------------------------------------------------------


def test_primary_and_candidate_load_from_the_bucket_through_the_runtime(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelMeshServing("mm", args()))
    runtime = pulumi_mocks.named("mm-runtime")
    assert runtime.typ == RUNTIME and runtime.inputs["metadata"]["name"] == "llm-ab-mlserver"
    assert runtime.inputs["spec"]["containers"][0]["name"] == "mlserver"
    assert runtime.inputs["spec"]["containers"][0]["image"] == "seldonio/mlserver:1.3.2"
    isvcs = {r.inputs["metadata"]["name"]: r for r in pulumi_mocks.of_type(ISVC)}
    assert set(isvcs) == {"backend-0", "backend-1"}
    for name, version, revision in [("backend-0", "v0", REV_A), ("backend-1", "v1", REV_B)]:
        meta = isvcs[name].inputs["metadata"]
        assert meta["namespace"] == "exp"
        assert meta["annotations"] == {"serving.kserve.io/deploymentMode": "ModelMesh",
                                       "serving.kserve.io/secretKey": "llm-ab-minio"}
        assert meta["labels"]["app.kubernetes.io/name"] == "backend"
        assert meta["labels"]["app.kubernetes.io/version"] == version
        assert "iter8.tools/watch" not in meta["labels"]
        assert isvcs[name].inputs["spec"] == {"predictor": {"model": {
            "modelFormat": {"name": "sklearn"}, "runtime": "llm-ab-mlserver",
            "storage": {"key": "llm-ab-minio", "path": f"wine-quality/{revision}/sklearn_model.joblib"}}}}
    assert pulumi_mocks.depends_on("mm-primary") == {"mm-storage", "mm-runtime"}


def test_storage_config_holds_the_reader_credentials_as_a_secret(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelMeshServing("mm", args()))
    secret = pulumi_mocks.k8s_named("core/v1:Secret", "storage-config")
    data = secret.inputs["stringData"]
    assert is_secret_value(data) or is_secret_value(data.get("llm-ab-minio"))
    entry = unsecret(data) if is_secret_value(data) else data
    value = json.loads(unsecret(entry["llm-ab-minio"]))
    assert value == {"type": "s3", "access_key_id": "reader-key", "secret_access_key": "reader-secret",
                     "endpoint_url": "http://minio.exp.svc.cluster.local:9000", "bucket": "model-weights",
                     "region": "us-east-1"}


def test_without_a_candidate_only_the_primary_exists(run_program, pulumi_mocks, resolve) -> None:
    mm = run_program(lambda: ModelMeshServing("mm", args(candidate=None)))
    assert [r.inputs["metadata"]["name"] for r in pulumi_mocks.of_type(ISVC)] == ["backend-0"]
    assert resolve(mm.candidate_name) is None
    assert resolve(mm.infer_url) == "http://modelmesh-serving.exp.svc.cluster.local:8008/v2/models/backend-0/infer"
    assert resolve(mm.rest_url) == "http://modelmesh-serving.exp.svc.cluster.local:8008"


def test_runtime_pods_reach_minio_and_this_namespace_reaches_them(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelMeshServing("mm", args(allowed_namespaces=["apps"])))
    to_minio = pulumi_mocks.named("mm-s3-netpol").inputs["spec"]
    assert to_minio["podSelector"] == {"matchLabels": MINIO}
    runtime_pods = {"podSelector": {"matchLabels": {"modelmesh-service": "modelmesh-serving"}}}
    assert to_minio["ingress"] == [{"from": [runtime_pods], "ports": [{"protocol": "TCP", "port": 9000}]}]
    to_mesh = pulumi_mocks.named("mm-netpol").inputs["spec"]
    assert to_mesh["podSelector"] == {"matchLabels": {"modelmesh-service": "modelmesh-serving"}}
    # Only ModelMesh's ports: the mesh's own (gRPC, litelinks) between its pods; gRPC and REST for the
    # namespace's labelled inference clients and the allowed namespaces (issue 11 item 10).
    assert to_mesh["ingress"] == [
        {"from": [runtime_pods], "ports": [{"protocol": "TCP", "port": 8033}, {"protocol": "TCP", "port": 8080}]},
        {"from": [{"podSelector": {"matchLabels": {"llm-ab/inference-client": "true"}}},
                  {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}],
         "ports": [{"protocol": "TCP", "port": 8033}, {"protocol": "TCP", "port": 8008}]}]
    out = pulumi_mocks.named("mm-egress-netpol").inputs["spec"]
    assert out["podSelector"] == {"matchLabels": {"modelmesh-service": "modelmesh-serving"}}
    assert out["policyTypes"] == ["Egress"]
    assert out["egress"] == [
        {"to": [runtime_pods], "ports": [{"protocol": "TCP", "port": 8033}, {"protocol": "TCP", "port": 8080}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "modelmesh-serving"}}}],
         "ports": [{"protocol": "TCP", "port": 2379}]},
        {"to": [{"podSelector": {"matchLabels": MINIO}}], "ports": [{"protocol": "TCP", "port": 9000}]}]
    clients = pulumi_mocks.named("mm-clients-netpol").inputs["spec"]
    assert clients["podSelector"] == {"matchLabels": {"llm-ab/inference-client": "true"}}
    assert clients["egress"] == [{"to": [runtime_pods], "ports": [{"protocol": "TCP", "port": 8033},
                                                                   {"protocol": "TCP", "port": 8008}]}]
    # The namespace's opt-in label is set on the Namespace itself (stacks.experiment, with
    # stacks.modelmesh_track's labels), not patched.
    assert not pulumi_mocks.of_type("kubernetes:core/v1:NamespacePatch")


def test_routemap_is_off_by_default_and_iter8_shaped_when_on(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelMeshServing("mm", args(routemap=True)))
    cm = pulumi_mocks.named("mm-routemap")
    assert cm.inputs["metadata"]["name"] == "backend" and cm.inputs["immutable"] is True
    labels = cm.inputs["metadata"]["labels"]
    assert labels["iter8.tools/kind"] == "routemap" and labels["app.kubernetes.io/managed-by"] == "iter8"
    assert yaml.safe_load(cm.inputs["data"]["strSpec"])["versions"][1]["resources"][0]["name"] == "backend-1"
    for isvc in pulumi_mocks.of_type(ISVC):
        assert isvc.inputs["metadata"]["labels"]["iter8.tools/watch"] == "true"


def test_no_routemap_without_the_flag(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelMeshServing("mm", args()))
    assert [r.name for r in pulumi_mocks.resources if r.name == "mm-routemap"] == []


# --- staging of the predictive models -----------------------------------------------------


def mesh(models: dict) -> ModelMeshSettings:
    return parse_settings({**minimal(), "modelmesh": {"models": models}}).modelmesh


def test_each_distinct_model_is_staged_once_with_only_its_file() -> None:
    staged = staged_models(mesh({"primary": PRIMARY, "candidate": CANDIDATE}))
    assert [s.role for s in staged] == ["primary", "candidate"]
    assert staged[0].prefix == f"wine-quality/{REV_A}"
    assert staged[0].extra_args == ("--allow-patterns", "sklearn_model.joblib", "--weights", "sklearn_model.joblib")
    same = staged_models(mesh({"primary": PRIMARY, "candidate": {**PRIMARY, "version": "v1"}}))
    assert [s.role for s in same] == ["primary"]


def test_the_staging_tool_accepts_the_flags_the_track_passes() -> None:
    """Contract with the staging tool: a sklearn model has no safetensors; --weights says what counts."""
    from staging.cli import parse_options
    from staging.common import StageError
    from staging.files import check_weights

    (model,) = staged_models(mesh({"primary": PRIMARY}))
    argv = [a.replace("$(S3_ENDPOINT)", "http://minio:9000")
            for a in staging_args(repo_id=model.repo_id, revision=model.revision, bucket="b", prefix=model.prefix)]
    opts = parse_options([*argv, *model.extra_args])
    assert opts.allow_patterns == ["sklearn_model.joblib"] and opts.weights == ["sklearn_model.joblib"]
    check_weights(["sklearn_model.joblib"], opts, opts.allow_patterns)
    with pytest.raises(StageError, match="no file matching --weights"):
        check_weights(["README.md"], opts, ["*"])
    (directory,) = staged_models(mesh({"primary": {k: v for k, v in PRIMARY.items() if k != "file"}}))
    opts = parse_options([*argv, *directory.extra_args])
    assert opts.allow_patterns == ["*"] and "*.joblib" in opts.weights
    check_weights(["model.joblib", "README.md"], opts, opts.allow_patterns)
