"""The ``modelmesh`` config: defaults, the parsed models, and an error naming the key for every bad value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from stacks.config_types import ConfigError
from stacks.modelmesh_settings import ModelMeshSettings, RuntimeSettings
from stacks.settings import parse_settings
from tests.harness import ROOT
from tests.samples import CANDIDATE, PRIMARY, REV_A, minimal


def with_mesh(mesh: dict[str, Any], **top: Any) -> dict[str, Any]:
    raw = copy.deepcopy(minimal())
    raw["modelmesh"] = copy.deepcopy(mesh)
    raw.update(top)
    return raw


def mesh_of(raw: dict[str, Any]) -> ModelMeshSettings:
    return parse_settings(raw).modelmesh


@pytest.fixture
def v2_case(tmp_path: Path) -> str:
    path = tmp_path / "backend-0.yaml"
    path.write_text((ROOT / "tests" / "golden" / "backend-0.yaml").read_text())
    return str(path)


def test_the_track_is_off_by_default() -> None:
    mm = mesh_of(minimal())
    assert mm == ModelMeshSettings()
    assert mm.enabled is False and mm.install is False and mm.app == "backend" and mm.routemap is False
    assert mm.runtime == RuntimeSettings()
    assert mm.runtime.server_type == "mlserver" and mm.runtime.image == "seldonio/mlserver:1.3.2"
    assert mm.runtime.supported_model_formats == ("sklearn", "xgboost", "lightgbm")
    assert (mm.runtime.grpc_port, mm.runtime.data_port, mm.runtime.management_port) == (8085, 8001, 8001)


def test_models_are_pinned_staged_per_revision_and_default_their_path_and_version(v2_case: str) -> None:
    mm = mesh_of(with_mesh({"enabled": True, "models": {"primary": PRIMARY, "candidate": CANDIDATE},
                            "smokeCases": [v2_case]}))
    assert (mm.primary_name, mm.candidate_name) == ("backend-0", "backend-1")
    assert mm.primary is not None and mm.candidate is not None
    assert mm.primary.path == "wine-quality" and mm.primary.version == REV_A[:7]
    assert mm.primary.storage_path == f"wine-quality/{REV_A}/sklearn_model.joblib"
    assert mm.primary.allow_patterns == ("sklearn_model.joblib",) and mm.primary.weights == ("sklearn_model.joblib",)
    assert mm.candidate.version == "v1"


def test_a_model_without_file_is_staged_and_loaded_as_a_directory() -> None:
    mm = mesh_of(with_mesh({"models": {"primary": {"repo": "org/digits", "revision": REV_A, "format": "xgboost"}}}))
    assert mm.primary is not None
    assert mm.primary.storage_path == f"digits/{REV_A}"
    assert mm.primary.allow_patterns == ("*",) and "*.bst" in mm.primary.weights


def test_a_server_type_brings_its_own_defaults() -> None:
    mm = mesh_of(with_mesh({"runtime": {"serverType": "ovms"}}))
    assert mm.runtime.name == "llm-ab-ovms" and mm.runtime.image == "openvino/model_server:2022.2"
    assert mm.runtime.supported_model_formats == ("openvino_ir", "onnx")
    assert (mm.runtime.data_port, mm.runtime.management_port) == (8001, 8888)
    torch = mesh_of(with_mesh({"runtime": {"serverType": "torchserve"}})).runtime
    assert (torch.data_port, torch.management_port) == (7070, 7071)


@pytest.mark.parametrize(
    ("mesh", "message"),
    [
        ({"runtime": {"serverType": "tgi"}},
         "llm-ab:modelmesh.runtime.serverType must be one of mlserver, triton, ovms, torchserve, got 'tgi'"),
        ({"models": {"primary": {**PRIMARY, "format": "onnx"}}},
         "llm-ab:modelmesh.models.primary.format must be a format the runtime llm-ab-mlserver (mlserver) supports: "
         "sklearn, xgboost, lightgbm; got 'onnx'"),
        ({"models": {"candidate": CANDIDATE}},
         "llm-ab:modelmesh.models.primary is required when models.candidate is set"),
        ({"enabled": True},
         "llm-ab:modelmesh.models.primary is required when modelmesh.enabled is true"),
        ({"runtime": {"image": "seldonio/mlserver:latest"}},
         "llm-ab:modelmesh.runtime.image must be an image pinned by an exact version tag or a digest"),
        ({"runtime": {"image": "seldonio/mlserver"}}, "llm-ab:modelmesh.runtime.image must be an image pinned"),
        ({"runtime": {"supportedModelFormats": ["sklearn", "onnx"]}},
         "llm-ab:modelmesh.runtime.supportedModelFormats must list formats the mlserver runtime serves "
         "(sklearn, xgboost, lightgbm), got 'onnx'"),
        ({"runtime": {"ports": {"grpcData": 9001, "runtimeManagement": 8001}}},
         "llm-ab:modelmesh.runtime.ports.runtimeManagement must equal ports.grpcData (9001) for mlserver"),
        ({"runtime": {"serverType": "torchserve", "ports": {"grpcData": 9001}}},
         "llm-ab:modelmesh.runtime.ports.grpcData cannot be changed for torchserve"),
        ({"install": True}, "llm-ab:modelmesh.install is not supported: ModelMesh Serving installs through an "
                            "imperative script"),
        ({"app": "Backend"}, "llm-ab:modelmesh.app must be a DNS-1035 label"),
        ({"app": "b" * 62}, "llm-ab:modelmesh.app must be at most 61 characters"),
        ({"models": {"primary": {**PRIMARY, "revision": "main"}}},
         "llm-ab:modelmesh.models.primary.revision must be a pinned commit"),
        ({"models": {"primary": {**PRIMARY, "version": "v 1"}}}, "llm-ab:modelmesh.models.primary.version must be"),
        ({"models": {"primary": PRIMARY, "candidate": {**CANDIDATE, "revision": REV_A, "file": "other.joblib"}}},
         "llm-ab:modelmesh.models.candidate.path must differ from modelmesh.models.primary.path ('wine-quality')"),
        ({"models": {"primary": PRIMARY, "extra": {}}}, "llm-ab:modelmesh.models.extra is not a known setting"),
        ({"runtime": {"colour": "blue"}}, "llm-ab:modelmesh.runtime.colour is not a known setting"),
        ({"enabled": True, "models": {"primary": PRIMARY}},
         "llm-ab:modelmesh.smokeCases must list at least one V2 smoke case file (kind: v2, model: backend-0)"),
        ({"enabled": True, "models": {"primary": PRIMARY}, "smokeCases": ["smoke/cases/mnist-svm.yaml"]},
         "llm-ab:modelmesh.smokeCases[0] must list V2 case files for backend-0"),
    ],
)
def test_bad_config_names_the_key(mesh: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(with_mesh(mesh))
    assert message in str(err.value)


def test_a_v2_case_file_that_is_not_valid_fails_naming_the_key_and_the_problem(tmp_path: Path) -> None:
    empty = tmp_path / "backend-0.yaml"
    empty.write_text("kind: v2\nmodel: backend-0\ncases: []\n")
    with pytest.raises(ConfigError) as err:
        parse_settings(with_mesh({"enabled": True, "models": {"primary": PRIMARY}, "smokeCases": [str(empty)]}))
    assert str(err.value).startswith("llm-ab:modelmesh.smokeCases[0] must list valid V2 case files")
    assert "backend-0.yaml: field 'cases': [] should be non-empty" in str(err.value)


def test_the_candidate_may_have_its_own_case_file_but_the_primary_needs_one(v2_case: str, tmp_path: Path) -> None:
    candidate_case = tmp_path / "backend-1.yaml"
    candidate_case.write_text(Path(v2_case).read_text().replace("model: backend-0", "model: backend-1"))
    models = {"primary": PRIMARY, "candidate": CANDIDATE}
    mesh = mesh_of(with_mesh({"enabled": True, "models": models, "smokeCases": [v2_case, str(candidate_case)]}))
    assert mesh.smoke_cases == (v2_case, str(candidate_case))
    with pytest.raises(ConfigError, match=r"modelmesh\.smokeCases must list a V2 case file for the primary"):
        parse_settings(with_mesh({"enabled": True, "models": models, "smokeCases": [str(candidate_case)]}))


def test_a_modelmesh_model_never_shares_a_tgi_models_prefix() -> None:
    tgi = minimal()["models"]["stable"]
    mesh = {"models": {"primary": {"repo": "julien-c/wine-quality", "revision": tgi["revision"],
                                   "path": "flan-t5-small"}}}
    with pytest.raises(ConfigError, match=r"modelmesh\.models\.primary\.path must differ from models\.stable\.path"):
        parse_settings(with_mesh(mesh))


def test_a_path_shared_with_a_tgi_model_is_fine_at_another_revision() -> None:
    mm = mesh_of(with_mesh({"models": {"primary": {**PRIMARY, "path": "flan-t5-small"}}}))
    assert mm.primary is not None and mm.primary.object_prefix == f"flan-t5-small/{REV_A}"


def test_the_management_port_follows_the_data_port_for_mlserver() -> None:
    runtime = mesh_of(with_mesh({"runtime": {"ports": {"grpcData": 9001}}})).runtime
    assert (runtime.data_port, runtime.management_port) == (9001, 9001)


def test_enabled_needs_minio_storage(v2_case: str) -> None:
    raw = with_mesh({"enabled": True, "models": {"primary": PRIMARY}, "smokeCases": [v2_case]},
                    platform="eks", storage={"kind": "s3", "bucket": "llm-ab-test-weights-123456789012"},
                    tgi={"gpusPerReplica": 0})
    with pytest.raises(ConfigError, match=r"modelmesh\.enabled needs storage\.kind minio"):
        parse_settings(raw)


def test_smoke_cases_are_not_needed_without_the_smoke_gate() -> None:
    mm = mesh_of(with_mesh({"enabled": True, "models": {"primary": PRIMARY}}, smoke={"enabled": False}))
    assert mm.enabled and mm.smoke_cases == ()
