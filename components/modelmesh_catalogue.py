"""The ModelMesh catalogue: built-in server types and their upstream facts, model formats and their
files, and the InferenceService naming convention (pure data, no Pulumi).

Read by the settings schema (defaults and checks of ``modelmesh.*``) and by the ModelMesh component.
"""

from __future__ import annotations

from dataclasses import dataclass

ETCD_NAMESPACE = "modelmesh-serving"
"""Where the platform's ModelMesh install runs etcd (its quickstart: Service ``etcd:2379`` in the controller's
namespace); the runtime pods keep their model registry there."""
ETCD_PORT = 2379
MM_GRPC_PORT = 8085
"""The model-mesh SPI endpoint of every built-in runtime (``grpcEndpoint: port:8085``)."""


@dataclass(frozen=True, kw_only=True)
class ServerType:
    """A built-in ModelMesh server type and its upstream runtime's facts (modelmesh-serving 0.12)."""

    name: str
    image: str
    """The image modelmesh-serving v0.12.0 pins for it."""
    formats: tuple[str, ...]
    """Model formats its built-in adapter serves."""
    default_formats: tuple[str, ...]
    """What the upstream runtime declares (autoSelect)."""
    data_port: int
    """Default ``grpcDataEndpoint`` port."""
    management_port: int | None
    """Default ``runtimeManagementPort``; None: the data port (one gRPC server does both)."""
    fixed_ports: bool = False
    """The adapter writes the server's ports itself; they cannot be changed here."""


SERVER_TYPES: dict[str, ServerType] = {
    "mlserver": ServerType(
        name="mlserver", image="seldonio/mlserver:1.3.2",
        formats=("sklearn", "xgboost", "lightgbm"), default_formats=("sklearn", "xgboost", "lightgbm"),
        data_port=8001, management_port=None),
    "triton": ServerType(
        name="triton", image="nvcr.io/nvidia/tritonserver:23.04-py3",
        formats=("keras", "onnx", "pytorch", "tensorflow", "tensorrt", "sklearn", "xgboost", "lightgbm"),
        default_formats=("keras", "onnx", "pytorch", "tensorflow", "tensorrt"),
        data_port=8001, management_port=None),
    "ovms": ServerType(
        name="ovms", image="openvino/model_server:2022.2",
        formats=("openvino_ir", "onnx"), default_formats=("openvino_ir", "onnx"),
        data_port=8001, management_port=8888),
    "torchserve": ServerType(
        name="torchserve", image="pytorch/torchserve:0.7.1-cpu",
        formats=("pytorch-mar",), default_formats=("pytorch-mar",),
        data_port=7070, management_port=7071, fixed_ports=True),
}


def isvc_name(app: str, index: int) -> str:
    """Iter8's convention: ``<app>-0`` is the primary, ``<app>-1`` the candidate."""
    return f"{app}-{index}"


FORMAT_WEIGHTS: dict[str, tuple[str, ...]] = {
    "sklearn": ("*.joblib", "*.pkl", "*.pickle"),
    "xgboost": ("*.json", "*.bst", "*.ubj"),
    "lightgbm": ("*.bst", "*.txt"),
    "onnx": ("*.onnx",),
    "keras": ("*.h5", "*.keras"),
    "pytorch": ("*.pt", "*.pth"),
    "tensorflow": ("*.pb",),
    "tensorrt": ("*.plan",),
    "openvino_ir": ("*.xml", "*.bin"),
    "pytorch-mar": ("*.mar",),
}
"""Files that hold a model of each format: what the staging Job must find (``--weights``)."""
