"""The embedded stack names the images scripts/images builds, with names of our own (one owner: the script)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.harness import ROOT, shell_assignments


def refs() -> dict[str, str]:
    return shell_assignments(str(ROOT / "scripts" / "images"), "refs")


def test_every_local_image_has_a_name_of_our_own() -> None:
    names = refs()
    assert set(names) == {"PAUSE_IMAGE", "COREDNS_IMAGE", "MINIO_IMAGE", "JOB_PYTHON_IMAGE"}
    for key, ref in names.items():
        assert ref.startswith("llm-ab.local/"), f"{key}={ref} must not pass for an upstream image"


@pytest.mark.parametrize("stack", ["dev", "dev-vllm"])
def test_the_embedded_stacks_name_the_images_the_real_node_has(stack: str) -> None:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    names = refs()
    assert config["llm-ab:storage"]["minioImage"] == names["MINIO_IMAGE"]
    assert config["llm-ab:staging"]["image"] == names["JOB_PYTHON_IMAGE"]
    assert config["llm-ab:smoke"]["image"] == names["JOB_PYTHON_IMAGE"]


def test_the_node_scripts_parse() -> None:
    for script in ("real-node", "images", "local-cluster", "toolchain"):
        proc = subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"scripts/{script}: {proc.stderr}"
