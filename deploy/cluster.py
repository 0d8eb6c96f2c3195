"""The few questions the deploy driver asks the cluster itself, through ``kubectl`` (deploy/namespace.py).

The program talks to the cluster only through the Kubernetes provider, which can't say whether an object
exists (a ``get`` of a missing object fails the preview); the driver asks before the preview instead,
with the kubeconfig the provider uses: the ambient one (``KUBECONFIG``) on the local platform, the
stack's ``kubeconfig`` output on eks. Nothing here runs unless a check needs an answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.naming import common_labels
from deploy.workspace import DriverError
from policy.contract import WEIGHTS_COMPONENT

KUBECTL_TIMEOUT_SECONDS = 60


def weights_claim_selector(stack: str) -> str:
    """The label selector of a stack's weights claims (components/minio.py labels them so)."""
    return ",".join(f"{key}={value}" for key, value in common_labels(WEIGHTS_COMPONENT, stack).items())


class Kubectl:
    """:class:`deploy.namespace.Cluster` through ``kubectl``."""

    def __init__(self, stack: str, env: Mapping[str, str], *, kubeconfig: str | None = None,
                 work_dir: Path | None = None) -> None:
        self.stack = stack
        self.env = dict(env)
        self.kubeconfig = kubeconfig
        """A kubeconfig's text (the eks stack's output); None: the environment's."""
        self.work_dir = work_dir

    def _run(self, *args: str, purpose: str = "check the experiment's namespace before the preview") -> str:
        binary = shutil.which("kubectl", path=self.env.get("PATH"))
        if binary is None:
            raise DriverError(f"kubectl is not on PATH: the driver needs it to {purpose} "
                              f"(kubectl {' '.join(args)}); scripts/toolchain cluster builds it")
        env = dict(self.env)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            if self.kubeconfig is not None:
                path = Path(tmp) / "kubeconfig"
                path.write_text(self.kubeconfig)
                os.chmod(path, 0o600)
                env["KUBECONFIG"] = str(path)
            try:
                proc = subprocess.run([binary, *args], capture_output=True, text=True, env=env,
                                      timeout=KUBECTL_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                raise DriverError(f"kubectl {' '.join(args)} did not answer in {KUBECTL_TIMEOUT_SECONDS}s: is the "
                                  "cluster reachable?") from None
        if proc.returncode != 0:
            raise DriverError(f"kubectl {' '.join(args)} failed, so the driver could not {purpose}: "
                              f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def namespace_exists(self, name: str) -> bool:
        return bool(self._run("get", "namespace", name, "--ignore-not-found", "-o", "name").strip())

    def weights_claims(self, namespace: str) -> list[str]:
        out = self._run("get", "persistentvolumeclaims", "-n", namespace, "-l", weights_claim_selector(self.stack),
                        "-o", "name")
        return sorted(line.split("/", 1)[-1] for line in out.split() if line.strip())

    def items(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of ``kind`` (in ``namespace``, or cluster-wide), as the API server returns them."""
        scope = ["-n", namespace] if namespace else []
        out = self._run("get", kind, *scope, "-o", "json", purpose="report what ran")
        return list(json.loads(out).get("items") or [])

    def logs(self, namespace: str, pod: str, tail: int) -> list[str]:
        """The last ``tail`` lines of a pod's log."""
        return self._run("logs", "-n", namespace, pod, f"--tail={tail}", purpose="show a gate's report").splitlines()
