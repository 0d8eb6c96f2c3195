"""The experiment's namespace (issue 22): an existing namespace is refused unless adopted explicitly (server-side
apply would take it over, and destroy delete it), an adopted one is never deleted, it stays protected while a
weights claim the stack kept is in it, and the claim and the namespace are kept by one decision."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from components.weights_volume import Keep, weights_keep
from deploy import namespace
from deploy.__main__ import NoCluster, check_namespace, driver_cluster
from deploy.__main__ import configured_settings as configured
from deploy.cluster import Kubectl, weights_claim_selector
from deploy.workspace import DriverError
from tests.harness import mocked_runtime, run_main
from tests.samples import dev_config, staging_config

KEPT = Keep(protect=True, retain_on_delete=True)
NOT_KEPT = Keep(protect=False, retain_on_delete=False)


class FakeCluster:
    def __init__(self, claims: dict[str, list[str]] | None = None, namespaces: tuple[str, ...] = ()) -> None:
        self.claims = claims or {}
        self.namespaces = {*namespaces, *self.claims}
        self.asked: list[str] = []

    def namespace_exists(self, name: str) -> bool:
        self.asked.append(f"namespace {name}")
        return name in self.namespaces

    def weights_claims(self, namespace: str) -> list[str]:
        self.asked.append(f"claims {namespace}")
        return self.claims.get(namespace, [])


class Unreachable:
    def namespace_exists(self, name: str) -> bool:
        raise AssertionError(f"the cluster was asked about {name} although the state tells")

    def weights_claims(self, namespace: str) -> list[str]:
        raise AssertionError(f"the cluster was asked about {namespace}'s claims although the state tells")


def ours(name: str = "llm-ab", *, protect: bool = True, retained: bool = True) -> namespace.DeployedNamespace:
    return namespace.DeployedNamespace(name=name, protect=protect, retained=retained)


# --- someone else's namespace ------------------------------------------------------------------------


def test_an_existing_namespace_the_stack_did_not_create_is_refused_naming_it_and_the_key() -> None:
    with pytest.raises(DriverError) as err:
        namespace.check(None, "team-a", KEPT, adopt=False, protect_storage=True,
                        cluster=FakeCluster(namespaces=("team-a",)))
    message = str(err.value)
    assert message.startswith("namespace 'team-a' already exists in the cluster and this stack did not create it")
    assert "pulumi config set --path adopt.namespace true" in message
    assert "pulumi config set namespace <new-name>" in message


def test_a_namespace_the_stack_moves_to_is_checked_too() -> None:
    with pytest.raises(DriverError, match="namespace 'team-a' already exists"):
        namespace.check(ours("llm-ab"), "team-a", KEPT, adopt=False, protect_storage=True,
                        cluster=FakeCluster(namespaces=("team-a",)))


def test_adopting_on_purpose_is_allowed_and_said() -> None:
    notes = namespace.check(None, "team-a", KEPT, adopt=True, protect_storage=True,
                            cluster=FakeCluster(namespaces=("team-a",)))
    assert notes == ["adopting the existing namespace 'team-a' (adopt.namespace): it is labelled and locked down "
                     "like the stack's own, and never deleted"]


def test_a_new_namespace_is_created_and_the_stacks_own_is_never_looked_up() -> None:
    cluster = FakeCluster()
    assert namespace.check(None, "llm-ab", KEPT, adopt=False, protect_storage=True, cluster=cluster) == []
    assert cluster.asked == ["namespace llm-ab"]
    assert namespace.check(ours(), "llm-ab", KEPT, adopt=False, protect_storage=True, cluster=Unreachable()) == []


def test_an_adopted_namespace_is_always_retained() -> None:
    keep = weights_keep(protect=False, allow_replace=False, minio=True, adopted=True)
    assert keep.namespace == Keep(protect=False, retain_on_delete=True)


def test_an_adopted_namespace_is_never_deleted_by_destroy() -> None:
    config = dev_config()
    config["llm-ab:adopt"] = {"namespace": True}
    config["llm-ab:storage"] = {**config.get("llm-ab:storage", {}), "protect": False}
    with mocked_runtime() as mocks:
        run_main(config)
        (ns,) = mocks.of_type("kubernetes:core/v1:Namespace")
        assert mocks.options[ns.name].retain_on_delete is True


# --- a kept claim keeps its namespace protected ------------------------------------------------------


def test_dropping_the_protection_of_a_namespace_that_holds_a_kept_claim_is_refused() -> None:
    cluster = FakeCluster({"llm-ab": ["minio-data"]})
    with pytest.raises(DriverError) as err:
        namespace.check(ours(), "llm-ab", NOT_KEPT, adopt=False, protect_storage=True, cluster=cluster)
    message = str(err.value)
    assert message.startswith("namespace 'llm-ab' still holds the weights claim(s) minio-data this stack kept")
    assert "Keep storage.allowReplace true" in message and "kubectl -n llm-ab delete pvc minio-data" in message


def test_once_the_kept_claim_is_gone_the_namespace_is_no_longer_kept() -> None:
    notes = namespace.check(ours(), "llm-ab", NOT_KEPT, adopt=False, protect_storage=True, cluster=FakeCluster())
    assert notes == ["namespace 'llm-ab' holds no weights claim any more: it is no longer kept on destroy"]


def test_storage_protect_false_lets_the_namespace_go_with_its_claims_as_asked() -> None:
    assert namespace.check(ours(), "llm-ab", NOT_KEPT, adopt=False, protect_storage=False, cluster=Unreachable()) == []
    assert namespace.check(ours(), "llm-ab", KEPT, adopt=False, protect_storage=True, cluster=Unreachable()) == []


def test_the_deployed_namespace_is_read_from_the_exported_state() -> None:
    urn = "urn:pulumi:dev::llm-ab::llmab:platform:ExperimentNamespace$kubernetes:core/v1:Namespace::experiment-ns"
    deployment = {"resources": [{"urn": urn, "type": "kubernetes:core/v1:Namespace", "protect": True,
                                 "inputs": {"metadata": {"name": "llm-ab-dev"}}}]}
    assert namespace.deployed_namespace(deployment) == ours("llm-ab-dev", retained=False)
    assert namespace.deployed_namespace({"resources": []}) is None


# --- one decision: how the claim and its namespace are kept -------------------------------------------


@pytest.mark.parametrize(("protect", "allow_replace", "minio", "claim", "ns"), [
    (True, False, True, KEPT, KEPT),
    # A new generation or namespace: the claim may be replaced, both stay in the cluster.
    (True, True, True, Keep(False, True), Keep(False, True)),
    (False, False, True, NOT_KEPT, NOT_KEPT),
    # Leaving MinIO: the old claim stays in the namespace, which stays protected and retained (issue 22).
    (True, True, False, Keep(False, True), KEPT),
    (False, True, False, Keep(False, True), Keep(False, True)),
    (True, False, False, KEPT, NOT_KEPT),  # S3 all along: no claim, the namespace holds nothing of the data
])
def test_the_namespace_is_kept_while_a_kept_claim_may_be_in_it(protect, allow_replace, minio, claim, ns) -> None:
    keep = weights_keep(protect=protect, allow_replace=allow_replace, minio=minio)
    assert (keep.claim, keep.namespace) == (claim, ns)


def test_leaving_minio_keeps_the_namespace_of_the_kept_claim_protected_in_the_program() -> None:
    config = staging_config()  # storage.kind s3, protect true
    config["llm-ab:storage"] = {**config["llm-ab:storage"], "allowReplace": True}
    with mocked_runtime(stack="staging") as mocks:
        run_main(config)
        (ns,) = [r for r in mocks.of_type("kubernetes:core/v1:Namespace") if r.name == "experiment-ns"]
        assert mocks.options[ns.name].protect is True and mocks.options[ns.name].retain_on_delete is True


# --- the driver ------------------------------------------------------------------------------------


def stack_config(tmp_path: Path, base: dict | None = None, stack: str = "dev", **overrides) -> dict:
    config = {**(base if base is not None else dev_config()), **overrides}
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    from deploy.__main__ import stack_file_config

    return stack_file_config(tmp_path, stack)


def exported_namespace(name: str) -> dict:
    urn = "urn:pulumi:s::llm-ab::llmab:platform:ExperimentNamespace$kubernetes:core/v1:Namespace::experiment-ns"
    return {"resources": [{"urn": urn, "protect": True, "retainOnDelete": True,
                           "inputs": {"metadata": {"name": name}}}]}


def test_the_driver_refuses_to_unprotect_the_namespace_of_a_claim_kept_when_leaving_minio(tmp_path) -> None:
    config = staging_config()  # storage.kind s3 after the move, storage.allowReplace back to false
    ns = config["llm-ab:namespace"]
    cluster = FakeCluster({ns: ["minio-data"]})
    with pytest.raises(DriverError, match=f"namespace '{ns}' still holds the weights claim"):
        check_namespace(configured("staging", stack_config(tmp_path, config, "staging")), exported_namespace(ns),
                        lambda _settings: cluster)
    # While storage.allowReplace stays true the namespace stays protected: nothing to ask.
    keeping = {**config, "llm-ab:storage": {**config["llm-ab:storage"], "allowReplace": True}}
    check_namespace(configured("staging", stack_config(tmp_path, keeping, "staging")), exported_namespace(ns),
                    lambda _settings: Unreachable())


def test_the_driver_refuses_someone_elses_namespace_before_the_preview_and_accepts_an_adoption(tmp_path) -> None:
    cluster = FakeCluster(namespaces=(dev_config()["llm-ab:namespace"],))
    with pytest.raises(DriverError, match="adopt.namespace"):
        check_namespace(configured("dev", stack_config(tmp_path)), {"resources": []}, lambda _settings: cluster)
    adopting = configured("dev", stack_config(tmp_path, **{"llm-ab:adopt": {"namespace": True}}))
    check_namespace(adopting, {"resources": []}, lambda _settings: cluster)


def test_the_driver_asks_nothing_of_a_namespace_that_stays_kept(tmp_path) -> None:
    ns = dev_config()["llm-ab:namespace"]
    check_namespace(configured("dev", stack_config(tmp_path)), exported_namespace(ns), lambda _settings: Unreachable())
    # storage.protect false lets it go as asked; a config that does not parse is the program's to report.
    unprotected = {"llm-ab:storage": {**dev_config().get("llm-ab:storage", {}), "protect": False}}
    check_namespace(configured("dev", stack_config(tmp_path, **unprotected)), exported_namespace(ns),
                    lambda _settings: Unreachable())
    check_namespace(configured("dev", stack_config(tmp_path, **{"llm-ab:storage": {"protect": "maybe"}})),
                    exported_namespace(ns), lambda _settings: Unreachable())


def test_an_eks_stack_without_a_cluster_yet_has_no_namespace_to_take_over() -> None:
    settings = type("S", (), {"platform": type("P", (), {"value": "eks"})()})()
    assert isinstance(driver_cluster("staging", {"resources": []}, {})(settings), NoCluster)
    deployment = {"resources": [{"type": "pulumi:pulumi:Stack", "outputs": {"kubeconfig": "{}"}}]}
    made = driver_cluster("staging", deployment, {})(settings)
    assert isinstance(made, Kubectl) and made.kubeconfig == "{}"


# --- kubectl -----------------------------------------------------------------------------------------

FAKE_KUBECTL = """#!/bin/sh
printf '%s|%s\\n' "$*" "$KUBECONFIG" >> "$KUBECTL_CALLS"
case "$*" in
  "get namespace team-a --ignore-not-found -o name") echo namespace/team-a ;;
  "get namespace"*) ;;
  "get persistentvolumeclaims -n broken"*) echo "error: You must be logged in to the server (Unauthorized)" >&2
    exit 1 ;;
  "get persistentvolumeclaims -n llm-ab -l "*)
    echo persistentvolumeclaim/minio-data; echo persistentvolumeclaim/minio-data-2 ;;
esac
"""


def kubectl(tmp_path: Path, **kwargs) -> tuple[Kubectl, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    calls = tmp_path / "calls"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBECTL_CALLS": str(calls),
           "KUBECONFIG": "/home/me/.kube/config"}
    return Kubectl("dev", env, work_dir=tmp_path, **kwargs), calls


def test_kubectl_answers_whether_a_namespace_exists_and_lists_the_stacks_claims(tmp_path) -> None:
    client, calls = kubectl(tmp_path)
    assert client.namespace_exists("team-a") is True and client.namespace_exists("llm-ab") is False
    assert client.weights_claims("other") == []
    assert client.weights_claims("llm-ab") == ["minio-data", "minio-data-2"]
    last = calls.read_text().splitlines()[-1]
    assert last == (f"get persistentvolumeclaims -n llm-ab -l {weights_claim_selector('dev')} -o name"
                    "|/home/me/.kube/config")  # the environment's kubeconfig, as the provider's


def test_on_eks_kubectl_uses_the_stacks_kubeconfig_in_a_private_file_it_removes(tmp_path) -> None:
    client, calls = kubectl(tmp_path, kubeconfig="apiVersion: v1")
    client.weights_claims("llm-ab")
    path = Path(calls.read_text().split("|")[-1].strip())
    assert path.name == "kubeconfig" and path.parent.parent == tmp_path and not path.exists()


def test_kubectl_failures_and_a_missing_kubectl_are_driver_errors(tmp_path) -> None:
    client, _ = kubectl(tmp_path)
    with pytest.raises(DriverError, match=r"kubectl get persistentvolumeclaims -n broken .* failed.*Unauthorized"):
        client.weights_claims("broken")
    nothing = tmp_path / "empty"
    nothing.mkdir()
    with pytest.raises(DriverError, match="kubectl is not on PATH"):
        Kubectl("dev", {"PATH": str(nothing)}).weights_claims("llm-ab")


def test_the_claim_selector_is_the_labels_minio_puts_on_its_claim() -> None:
    with mocked_runtime() as mocks:
        run_main(dev_config())
        (pvc,) = mocks.of_type("kubernetes:core/v1:PersistentVolumeClaim")
        labels = pvc.inputs["metadata"]["labels"]
    wanted = dict(pair.split("=") for pair in weights_claim_selector("test").split(","))
    assert wanted.items() <= labels.items()


class RefreshRecorder:
    def __init__(self) -> None:
        self.refreshed = 0

    def refresh(self, **_kwargs: object) -> None:
        self.refreshed += 1


def test_a_state_whose_namespace_the_cluster_lost_is_refreshed_before_the_update(tmp_path, capsys) -> None:
    """`scripts/local-cluster down` (or a new kind cluster) leaves a state that lists everything: without a
    refresh, up would call all of it unchanged and create nothing."""
    from deploy.__main__ import refresh_if_the_cluster_lost_it

    ns = dev_config()["llm-ab:namespace"]
    settings = configured("dev", stack_config(tmp_path))
    stack = RefreshRecorder()
    assert refresh_if_the_cluster_lost_it(stack, settings, exported_namespace(ns), lambda _s: FakeCluster(), "never")
    assert stack.refreshed == 1
    assert f"the stack's state holds namespace {ns}, the cluster has none" in capsys.readouterr().err
    # the cluster still has it, or the state never had it (nothing asked), or the config does not parse
    assert not refresh_if_the_cluster_lost_it(stack, settings, exported_namespace(ns),
                                              lambda _s: FakeCluster(namespaces=(ns,)), "never")
    assert not refresh_if_the_cluster_lost_it(stack, settings, {"resources": []}, lambda _s: Unreachable(), "never")
    assert not refresh_if_the_cluster_lost_it(stack, None, exported_namespace(ns), lambda _s: Unreachable(), "never")
    assert stack.refreshed == 1
