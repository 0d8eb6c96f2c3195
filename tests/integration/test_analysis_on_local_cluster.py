"""The dev program with the analysis gate and observability on, rendered under Pulumi mocks and applied to
the embedded local cluster: the PodMonitors pass the API server's validation of our PodMonitor CRD schema
(strict field validation: no field of ours is unknown to it), the analysis Job and its ConfigMaps are
accepted and the Job completes (kwok runs no container: this proves the objects, not the analysis, which
tests/analysis runs against real servers)."""

from __future__ import annotations

import copy
import runpy
from typing import Any

import pytest
import yaml

from tests.harness import ROOT, RecordingMocks, set_stack_config
from tests.integration.render import manifests
from tests.integration.test_program_on_local_cluster import _wait
from tests.samples import dev_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _config() -> dict[str, Any]:
    config = copy.deepcopy(dev_config())
    config["llm-ab:namespace"] = "llm-ab-it-analysis"
    config["llm-ab:analysis"] = {"enabled": True, "requests": 100, "durationSeconds": 60}
    config["llm-ab:observability"] = {"prometheus": True, "podMonitorLabels": {"release": "kps"}}
    return config


@pytest.fixture
def objects(monkeypatch: pytest.MonkeyPatch, run_program, pulumi_mocks: RecordingMocks) -> list[dict[str, Any]]:
    set_stack_config(_config())
    monkeypatch.setattr("pulumi.export", lambda *_: None)
    run_program(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))
    return manifests(pulumi_mocks.resources)


def _apply(cluster, objs: list[dict[str, Any]]) -> None:
    first = [o for o in objs if o["kind"] in ("Namespace", "CustomResourceDefinition", "StorageClass")]
    rest = [o for o in objs if o not in first]
    for batch in (first, rest):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "--validate=strict", "-f", "-",
                        input=yaml.safe_dump_all(batch, sort_keys=False))


def test_analysis_and_observability_objects_are_accepted_and_the_job_completes(local_cluster, objects) -> None:
    kinds = {o["kind"] for o in objects}
    assert {"PodMonitor", "Job", "ConfigMap", "NetworkPolicy"} <= kinds
    _apply(local_cluster, objects)
    monitors = local_cluster.get_json("podmonitors.monitoring.coreos.com", "-n", "llm-ab-it-analysis")["items"]
    assert sorted(m["metadata"]["name"] for m in monitors) == ["text-generation-inference-canary",
                                                               "text-generation-inference-stable"]
    stable = next(m for m in monitors if m["metadata"]["name"].endswith("stable"))
    assert stable["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s",
                                                      "scheme": "http"}]  # nothing pruned
    assert stable["metadata"]["labels"]["release"] == "kps"
    jobs = [o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("analysis-")]
    assert len(jobs) == 1
    pending = _wait(local_cluster, jobs, timeout=180)
    assert not pending, "not complete:\n" + "\n".join(pending)


def test_the_api_server_rejects_a_pod_monitor_outside_the_schema(local_cluster, objects) -> None:
    monitor = copy.deepcopy(next(o for o in objects if o["kind"] == "PodMonitor"))
    monitor["metadata"]["name"] = "bad-scheme"
    monitor["spec"]["podMetricsEndpoints"][0]["scheme"] = "ftp"
    namespace = next(o for o in objects if o["kind"] == "Namespace")
    local_cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(namespace))
    proc = local_cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(monitor), check=False)
    assert proc.returncode != 0 and "scheme" in proc.stderr and "ftp" in proc.stderr
