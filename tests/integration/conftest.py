"""Integration tests against the embedded local cluster (scripts/local-cluster), run under a
distinct cluster name so they never touch the developer's `llm-ab` cluster.

They run only when the cluster toolchain is built (scripts/toolchain cluster, ~22 min cold) or when
LLMAB_INTEGRATION=1 asks to build it; otherwise they are skipped with the reason.
LLMAB_KEEP_CLUSTER=1 keeps the cluster after the session (for debugging)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.workspace import toolchain_env

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
CLUSTER_NAME = os.environ.get("LLMAB_IT_CLUSTER_NAME", "llm-ab-it")


def _toolchain_status() -> str:
    return subprocess.run([str(SCRIPTS / "toolchain"), "status"], capture_output=True, text=True).stdout


def _cluster_built() -> bool:
    status = _toolchain_status()
    return all(f"{piece} " in status and "built" in line
               for piece in ("kube", "etcd", "kwok")
               for line in status.splitlines() if line.strip().startswith(piece + " "))


class Cluster:
    def __init__(self, kubeconfig: str, kubectl: str) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl_bin = kubectl

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        proc = subprocess.run([self.kubectl_bin, *args], input=input, capture_output=True, text=True, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[Cluster]:
    if os.environ.get("LLMAB_INTEGRATION") != "1" and not _cluster_built():
        pytest.skip("cluster toolchain not built: run scripts/toolchain cluster (or set LLMAB_INTEGRATION=1)")
    lc = [str(SCRIPTS / "local-cluster"), "--name", CLUSTER_NAME]
    up = subprocess.run([*lc, "up"], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"scripts/local-cluster up failed:\n{up.stdout}\n{up.stderr}")
    kubeconfig = subprocess.run([*lc, "kubeconfig"], capture_output=True, text=True, check=True).stdout.strip()
    bin_dir = toolchain_env()["LLMAB_TOOLCHAIN_BIN"]
    try:
        yield Cluster(kubeconfig, str(Path(bin_dir) / "kubectl"))
    finally:
        if os.environ.get("LLMAB_KEEP_CLUSTER") != "1":
            subprocess.run([*lc, "down"], capture_output=True, text=True)
