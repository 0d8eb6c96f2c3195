"""Issue 11 item 13: the serving pods run as non-root with a read-only root file system by default, the
directories the server writes are emptyDirs, and images that need root are refused with the key."""

from __future__ import annotations

from typing import Any

import pytest

from components.engines.tgi import needs_root
from stacks.config_types import ConfigError
from stacks.settings import parse_settings
from tests.samples import dev_config, with_value

WRITABLE = {"/tmp", "/data", "/dev/shm"}
"""What TGI writes: shard sockets and temp files, the hub cache (HUGGINGFACE_HUB_CACHE), shared memory."""


def tgi_pod(mocks: Any, variant: str) -> dict[str, Any]:
    return mocks.k8s_named("apps/v1:Deployment", f"text-generation-inference-{variant}").inputs["spec"]["template"][
        "spec"]


def test_serving_pods_run_as_non_root_with_a_read_only_root_by_default(run_main, pulumi_mocks) -> None:
    run_main(dev_config())
    for variant in ("stable", "canary"):
        pod = tgi_pod(pulumi_mocks, variant)
        assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True,
                                          "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}
        (container,) = pod["containers"]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}}
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["HOME"] == "/tmp" and env["HUGGINGFACE_HUB_CACHE"] == "/data" and env["PORT"] == "8080"
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert set(mounts) == WRITABLE
        assert all("emptyDir" in v for v in mounts.values())
        assert mounts["/dev/shm"]["emptyDir"]["medium"] == "Memory"


def test_run_as_non_root_false_runs_the_image_as_it_is(run_main, pulumi_mocks) -> None:
    config = dev_config()
    config["llm-ab:serving"] = {**config["llm-ab:serving"], "runAsNonRoot": False}
    run_main(config)
    pod = tgi_pod(pulumi_mocks, "stable")
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(("image", "root_only"), [
    ("ghcr.io/huggingface/text-generation-inference:1.3.4", False),
    ("ghcr.io/huggingface/text-generation-inference:3.0.1", False),
    ("ghcr.io/huggingface/text-generation-inference:3.1.1", True),
    ("ghcr.io/huggingface/text-generation-inference:3.3.5-intel-cpu", True),
    ("ghcr.io/huggingface/text-generation-inference@sha256:" + "a" * 64, False),
])
def test_images_that_need_root_are_known(image: str, root_only: bool) -> None:
    assert needs_root(image) is root_only


def test_a_root_only_image_with_the_non_root_default_fails_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(with_value("tgi.image", "ghcr.io/huggingface/text-generation-inference:3.3.5"))
    assert str(err.value).startswith(
        "llm-ab:serving.runAsNonRoot must be false for 'ghcr.io/huggingface/text-generation-inference:3.3.5': TGI 3.1 "
        "and later install Python under /root, which other users can't read (huggingface/text-generation-inference"
        "#3082)")
    raw = {**with_value("tgi.image", "ghcr.io/huggingface/text-generation-inference:3.3.5"),
           "serving": {"runAsNonRoot": False}}
    assert parse_settings(raw).serving.run_as_non_root is False
