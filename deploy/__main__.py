"""``python -m deploy VERB [--stack STACK]``: preview, up, destroy or show the outputs of a stack.

Run it through ``scripts/stack`` (or ``make up`` & co.), which first builds or finds the toolchain,
starts the local cluster when no cluster is configured and exports where everything is.
Exit codes: 0 done, 1 the engine or a policy failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
from collections.abc import Callable, Mapping
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from deploy import cluster, credentials, namespace, reality, volume
from deploy.workspace import (
    PROJECT,
    REPO_ROOT,
    DriverError,
    Engine,
    prepare_engine_dir,
    record_generator,
    recorded_generator,
    resolve_engine,
)
from stacks import outputs as OUT

POLICY_PACK = REPO_ROOT / "policy" / "run-pack"
POLICY_CONFIG_DIR = REPO_ROOT / "policy" / "config"


def log(message: str) -> None:
    print(f"[deploy] {message}", file=sys.stderr, flush=True)


def program() -> None:
    """The project's own entry point, run inline (no language host)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    runpy.run_path(str(REPO_ROOT / "__main__.py"), run_name="__main__")


def policy_args(stack: str, enabled: bool) -> dict[str, list[str]]:
    """The policy pack (an executable: no language host needed) and the stack's pack config."""
    if not enabled:
        return {}
    args = {"policy_packs": [str(POLICY_PACK)]}
    config = POLICY_CONFIG_DIR / f"{stack}.json"
    if config.is_file():
        args["policy_pack_configs"] = [str(config)]
    return args


def format_outputs(outputs: Mapping[str, Any], *, show_secrets: bool = False, as_json: bool = False) -> str:
    """Outputs as ``pulumi stack output`` prints them (``[secret]`` unless shown)."""
    def shown(item: Any) -> Any:
        return item.value if (show_secrets or not item.secret) else "[secret]"

    if as_json:
        return json.dumps({k: shown(v) for k, v in sorted(outputs.items())}, indent=2)
    if not outputs:
        return "No output values currently in this stack"
    width = max(len("OUTPUT"), *(len(k) for k in outputs))
    lines = [f"Current stack outputs ({len(outputs)}):", f"    {'OUTPUT':<{width}}  VALUE"]
    for key in sorted(outputs):
        value = shown(outputs[key])
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        lines.append(f"    {key:<{width}}  {text}")
    return "\n".join(lines)


def engine_error(err: Exception) -> str:
    """The CLI's stderr part of an Automation API error (stdout was streamed already)."""
    text = str(err)
    stderr = text.split("\n stderr: ", 1)[1] if "\n stderr: " in text else text
    if "incorrect passphrase" in stderr or "passphrase must be set" in stderr:
        stderr += ("\nThe stack's secrets were encrypted with another passphrase: set PULUMI_CONFIG_PASSPHRASE(_FILE) "
                   "to that one (README: 'State, secrets and the passphrase').")
    return stderr.strip() or text.strip()


def open_stack(stack_name: str, engine: Engine, work_dir: Path):
    """The stack, selected or created, with the engine running in ``work_dir`` (its copy of the project: the CLI
    writes into the stack file there, :func:`deploy.workspace.prepare_engine_dir`)."""
    from pulumi import automation as auto

    command = auto.PulumiCommand(root=engine.pulumi_root) if engine.pulumi_root else auto.PulumiCommand()
    opts = auto.LocalWorkspaceOptions(work_dir=str(work_dir), pulumi_home=engine.pulumi_home,
                                      env_vars=dict(engine.env), pulumi_command=command)
    return auto.create_or_select_stack(stack_name=stack_name, project_name=PROJECT, program=program, opts=opts)


def stack_file_config(work_dir: Path, stack_name: str) -> dict[str, Any]:
    """``config`` of ``Pulumi.<stack>.yaml`` as written (the SDK's StackSettings drops object values)."""
    import yaml

    path = work_dir / f"Pulumi.{stack_name}.yaml"
    if not path.is_file():
        return {}
    return dict((yaml.safe_load(path.read_text()) or {}).get("config") or {})


def settle_credentials(stack, config: Mapping[str, Any], deployment: Mapping[str, Any], *, directory: Path,
                       allow_rotation: bool) -> None:
    """Decide (once) and check the credential generator before anything is previewed (``config``: the tracked
    stack file's, :func:`stack_file_config`). A decision the user did not make is recorded in the engine's
    ``directory`` (the stack's state), never in the tracked file, and set on the engine's copy of it."""
    configured = credentials.configured_generator(config)
    recorded = recorded_generator(directory)
    deployed = credentials.deployed_generator(deployment)

    def random_plugin() -> bool:
        plugins = [(p.name, p.kind, p.version) for p in stack.workspace.list_plugins()]
        return credentials.has_random_plugin(plugins, dist_version("pulumi-random"))

    choice = credentials.choose(configured, deployed, random_plugin, recorded=recorded,
                                allow_rotation=allow_rotation)
    if choice.record:
        from pulumi import automation as auto

        path = record_generator(directory, choice.generator.value)
        stack.set_config(credentials.PATH_KEY, auto.ConfigValue(choice.generator.value), path=True)
        log(f"credentials: {choice.generator.value} ({choice.reason}); recorded in {path} (the stack's state, not "
            f"Pulumi.{stack.name}.yaml) so later runs keep the same credentials")
    else:
        log(f"credentials: {choice.generator.value} ({choice.reason})")


def configured_settings(stack_name: str, config: Mapping[str, Any]) -> Any:
    """The stack file's settings (``stacks.settings.Settings``), or None when they don't parse: the program
    then reports the bad key itself, before any resource."""
    from stacks.config_types import ConfigError
    from stacks.settings import parse_settings

    prefix = f"{PROJECT}:"
    raw = {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}
    try:
        return parse_settings(raw, stack=stack_name)
    except (ConfigError, ValueError):
        return None


def check_volume(settings: Any, deployment: Mapping[str, Any]) -> None:
    """Refuse a change that would replace the weights volume unless storage.allowReplace (deploy/volume.py);
    ``settings`` are :func:`configured_settings` (None: nothing to check, the program reports the bad key)."""
    deployed = volume.deployed_claim(deployment)
    if deployed is None or settings is None:
        return
    verdict = volume.check(deployed, volume.configured_claim(settings), allow_replace=settings.storage.allow_replace)
    for note in verdict.notes:
        log(f"weights volume: {note}")


def check_namespace(settings: Any, deployment: Mapping[str, Any],
                    make_cluster: Callable[[Any], namespace.Cluster]) -> None:
    """Refuse to take over a namespace the stack did not create unless adopt.namespace, or to drop the
    protection of one that still holds a kept weights claim (deploy/namespace.py). ``make_cluster(settings)``
    makes the cluster client (:func:`driver_cluster`); it is asked only when the state can't tell."""
    if settings is None:
        return
    notes = namespace.check(namespace.deployed_namespace(deployment), settings.namespace,
                            settings.weights_keep.namespace, adopt=settings.adopt.namespace,
                            protect_storage=settings.storage.protect,
                            cluster=LazyCluster(lambda: make_cluster(settings)))
    for note in notes:
        log(f"namespace: {note}")


def refresh_if_the_cluster_lost_it(stack: Any, settings: Any, deployment: Mapping[str, Any],
                                   make_cluster: Callable[[Any], namespace.Cluster], color: str) -> bool:
    """The state holds the experiment's namespace but the cluster has none: the cluster was recreated or emptied
    (``scripts/local-cluster down``, a new kind cluster). Refresh the state from the cluster first, so the
    update recreates what is gone instead of calling it unchanged; True when it did."""
    deployed = namespace.deployed_namespace(deployment)
    if settings is None or deployed is None or make_cluster(settings).namespace_exists(deployed.name):
        return False
    log(f"the stack's state holds namespace {deployed.name}, the cluster has none (recreated or emptied): "
        "refreshing the state from the cluster first")
    stack.refresh(color=color, on_output=out)
    return True


class LazyCluster:
    """A :class:`deploy.namespace.Cluster` made on its first question (most runs ask none)."""

    def __init__(self, make: Callable[[], namespace.Cluster]) -> None:
        self._make = make
        self._cluster: namespace.Cluster | None = None

    def _get(self) -> namespace.Cluster:
        if self._cluster is None:
            self._cluster = self._make()
        return self._cluster

    def namespace_exists(self, name: str) -> bool:
        return self._get().namespace_exists(name)

    def weights_claims(self, namespace: str) -> list[str]:
        return self._get().weights_claims(namespace)


class NoCluster:
    """An eks stack whose cluster is not deployed yet: it has no namespace and no claim."""

    def namespace_exists(self, name: str) -> bool:  # noqa: ARG002 - the Cluster protocol
        return False

    def weights_claims(self, namespace: str) -> list[str]:  # noqa: ARG002 - the Cluster protocol
        return []

    def items(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:  # noqa: ARG002 - reality.Pods
        raise DriverError("the cluster's kubeconfig was not in the stack's state before this update")

    def logs(self, namespace: str, pod: str, tail: int) -> list[str]:  # noqa: ARG002 - reality.Pods
        return []


def driver_cluster(stack_name: str, deployment: Mapping[str, Any], env: Mapping[str, str]) -> Callable[[Any], Any]:
    """How the driver reaches the cluster the program deploys to: the environment's kubeconfig (local), or
    the eks stack's ``kubeconfig`` output (none yet: a cluster the update creates, empty)."""
    def make(settings: Any) -> namespace.Cluster:
        if settings.platform.value != "eks":
            return cluster.Kubectl(stack_name, env)
        outputs = next((r.get("outputs") or {} for r in deployment.get("resources") or []
                        if r.get("type") == "pulumi:pulumi:Stack"), {})
        kubeconfig = outputs.get(OUT.KUBECONFIG)
        if kubeconfig is None:
            return NoCluster()
        if not isinstance(kubeconfig, str):
            raise DriverError(f"the stack's {OUT.KUBECONFIG} output can't be read from its state (a secret?), so "
                              "the experiment's namespace can't be checked before the preview")
        return cluster.Kubectl(stack_name, env, kubeconfig=kubeconfig)
    return make


def out(line: str) -> None:
    """The engine's own output, as it comes."""
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    engine = resolve_engine(os.environ, args.stack)
    work_dir = Path(args.work_dir).resolve()
    if not (work_dir / "Pulumi.yaml").is_file():
        raise DriverError(f"--work-dir {work_dir} has no Pulumi.yaml")
    log(f"stack {args.stack}: backend {engine.backend_url}, {engine.passphrase_note}")
    log(f"engine: {engine.pulumi_root or 'pulumi on PATH'}, PULUMI_HOME {engine.pulumi_home}, "
        f"KUBECONFIG {os.environ.get('KUBECONFIG', '(default)')}")
    directory = prepare_engine_dir(work_dir, engine.state_dir, args.stack)
    stack = open_stack(args.stack, engine, directory)
    color = "always" if sys.stdout.isatty() else "never"
    t0 = time.monotonic()
    if args.verb in ("up", "preview"):
        deployment = stack.export_stack().deployment or {}
        config = stack_file_config(work_dir, stack.name)
        settle_credentials(stack, config, deployment, directory=directory,
                           allow_rotation=args.allow_credential_rotation)
        settings = configured_settings(stack.name, config)
        check_volume(settings, deployment)
        make_cluster = driver_cluster(stack.name, deployment, os.environ)
        if refresh_if_the_cluster_lost_it(stack, settings, deployment, make_cluster, color):
            deployment = stack.export_stack().deployment or {}
        check_namespace(settings, deployment, make_cluster)
    policies = policy_args(args.stack, not args.no_policy)
    steps, warnings = StepRecorder(), Warnings()
    on_event = on_events(steps, warnings)
    try:
        if args.verb == "preview":
            result = stack.preview(diff=True, color=color, on_output=out, on_event=on_event, **policies)
            warnings.print()
            log(f"preview of {args.stack}: {summary(result.change_summary)} in {time.monotonic() - t0:.1f}s")
            return 0
        if args.verb == "up":
            try:
                result = stack.up(diff=args.diff, color=color, on_output=out, on_event=on_event, **policies)
            except Exception:
                # a failed gate is when "what really ran" matters most: its report, or that it never ran
                show_reality(settings, make_cluster)
                raise
            if args.diff:  # without --diff the CLI's display has its own Diagnostics block
                warnings.print()
            log(f"up of {args.stack}: {summary(result.summary.resource_changes or {})} in "
                f"{time.monotonic() - t0:.1f}s")
            print(format_outputs(result.outputs, show_secrets=args.show_secrets))
            show_reality(settings, make_cluster)
            return 0
        if args.verb == "destroy":
            # Protected resources (the weights claim and its namespace) stay, in the cluster and the state.
            stack.destroy(color=color, on_output=out, on_event=steps, exclude_protected=True)
            kept = [r for r in stack.export_stack().deployment.get("resources", [])
                    if r.get("protect") and r.get("type", "").startswith("kubernetes:")]
            log(f"destroy of {args.stack} in {time.monotonic() - t0:.1f}s; kept (protected): "
                + (", ".join(f"{r['type'].rsplit(':', 1)[1]} {r['urn'].rsplit('::', 1)[1]}" for r in kept)
                   or "nothing"))
            return 0
    finally:
        steps.write(args.steps)
    print(format_outputs(stack.outputs(), show_secrets=args.show_secrets, as_json=args.json))
    return 0


def show_reality(settings: Any, make_cluster: Callable[[Any], Any]) -> None:
    """After ``up``: which pods of the experiment's namespace really ran, and what each gate Job that ran said
    (deploy/reality.py), asked of the cluster the provider deploys to."""
    if settings is not None:
        for line in reality.report(make_cluster(settings), settings.namespace):
            log(line)


class StepRecorder:
    """Every resource step the engine counts (op, URN, type, changed keys), for ``--steps``."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def __call__(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None:
            return
        meta = pre.metadata
        op = meta.op.value if hasattr(meta.op, "value") else str(meta.op)
        if op == "update" and meta.type.startswith("pulumi:providers:") and not meta.diffs:
            # When other resources change the engine announces a no-op update of a default provider
            # (seen for pulumi-python); its own summary and diff don't count it, and nor do we.
            return
        self.steps.append({"op": op, "urn": meta.urn, "type": meta.type,
                           "name": meta.urn.rsplit("::", 1)[-1], "diffs": list(meta.diffs or [])})

    def write(self, path: str | None) -> None:
        if path:
            Path(path).write_text(json.dumps(self.steps, indent=2))


EXPECTED_WARNINGS = ("using pulumi-resource-",)
"""Engine warnings every run of ours gets (the toolchain puts its provider on PATH on purpose)."""


class Warnings:
    """The program's and the engine's warnings and errors, from the event stream: with ``--diff`` the CLI's
    display prints no Diagnostics block, so the driver prints them itself (once each, in order)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, event: Any) -> None:
        diag = getattr(event, "diagnostic_event", None)
        if diag is None or diag.severity not in ("warning", "error") or getattr(diag, "ephemeral", False):
            return
        message = diag.message.strip()
        if message and message not in self.seen and not message.startswith(EXPECTED_WARNINGS):
            self.seen.append(message)

    def print(self) -> None:
        for message in self.seen:
            log(f"warning: {message}")


def on_events(*handlers: Any) -> Any:
    """One ``on_event`` callback calling every handler."""
    def call(event: Any) -> None:
        for handler in handlers:
            handler(event)
    return call


def summary(changes: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {op}" for op, n in sorted(changes.items())) or "no changes"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deploy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("verb", choices=["preview", "up", "destroy", "outputs"])
    p.add_argument("--stack", default=os.environ.get("LLMAB_STACK", "dev"))
    p.add_argument("--work-dir", default=str(REPO_ROOT),
                   help="where Pulumi.yaml and Pulumi.<stack>.yaml are (default: the repository)")
    p.add_argument("--no-policy", action="store_true", help="skip the policy pack (preview, up)")
    p.add_argument("--diff", action="store_true", help="up: print the full diff")
    p.add_argument("--show-secrets", action="store_true", help="print secret outputs in plain text")
    p.add_argument("--json", action="store_true", help="outputs: as JSON")
    p.add_argument("--allow-credential-rotation", action="store_true",
                   help=f"accept a change of {credentials.PATH_KEY} on a deployed stack (replaces every credential)")
    p.add_argument("--steps", metavar="PATH",
                   help="preview, up, destroy: write every resource step (op, URN, type, changed keys) as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except DriverError as err:
        log(f"ERROR: {err}")
        return 2
    except Exception as err:  # noqa: BLE001 - the Automation API raises CommandError subclasses
        if type(err).__module__.startswith("pulumi.automation"):
            log(f"ERROR: pulumi {args.verb} of stack {args.stack} failed:\n{engine_error(err)}")
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
