"""The NetworkPolicies the program renders (dev, dev with ModelMesh, dev in gateway mode) are accepted by
the real kube-apiserver of the local cluster and stored as rendered (issue 11 item 10).

The local cluster (kwok) validates and stores NetworkPolicies but enforces nothing: who may talk to whom
is checked on the rendered policies by tests/components/test_network_policies.py.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.golden.render import dev_with_modelmesh
from tests.harness import ROOT, mocked_runtime, run_program, set_stack_config
from tests.integration.render import manifests
from tests.samples import dev_config, dev_gateway_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def render(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The Namespace and NetworkPolicy manifests of the program with ``config``."""
    import pulumi

    with mocked_runtime() as mocks:
        set_stack_config(config)
        real_export = pulumi.export
        pulumi.export = lambda *_: None  # type: ignore[assignment]
        try:
            run_program(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))
        finally:
            pulumi.export = real_export  # type: ignore[assignment]
        return [o for o in manifests(mocks.resources) if o["kind"] in ("Namespace", "NetworkPolicy")]


def numbers_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: numbers_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers_as_ints(v) for v in value]
    return value


@pytest.mark.parametrize("config", [dev_config, dev_with_modelmesh, dev_gateway_config],
                         ids=["dev", "dev-modelmesh", "dev-gateway"])
def test_rendered_policies_are_accepted_and_stored_as_rendered(local_cluster, config: Callable[[], Any]) -> None:
    objs = numbers_as_ints(render(config()))
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    assert len(policies) >= 6
    namespaces = [o for o in objs if o["kind"] == "Namespace"]
    local_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                          input=yaml.safe_dump_all(namespaces, sort_keys=False))
    try:
        local_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                              input=yaml.safe_dump_all(policies, sort_keys=False))
        for policy in policies:
            meta = policy["metadata"]
            stored = local_cluster.get_json("networkpolicy", meta["name"], "-n", meta["namespace"])
            assert stored["spec"] == policy["spec"], json.dumps([stored["spec"], policy["spec"]], indent=1)
        deny = [p for p in policies if p["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}]
        assert [p["metadata"]["namespace"] for p in deny] == [dev_config()["llm-ab:namespace"]]
    finally:
        for policy in policies:
            meta = policy["metadata"]
            local_cluster.kubectl("delete", "networkpolicy", meta["name"], "-n", meta["namespace"],
                                  "--ignore-not-found", check=False)
