"""Where the engine, its state and its secrets live: resolved from the environment, without Pulumi.

The shell side (``scripts/toolchain env``, sourced by ``scripts/stack``) exports where the CLI and
the plugins are; everything here is a plain function of that environment, so it is unit-tested.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "llm-ab"

PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


class DriverError(Exception):
    """A problem the user can fix; the message says what to do."""


@dataclass(frozen=True)
class Engine:
    """The Pulumi CLI the driver runs and the environment every CLI call gets."""

    pulumi_root: str | None
    """Directory with ``bin/pulumi`` (PulumiCommand's root); None: ``pulumi`` from PATH."""
    pulumi_home: str
    backend_url: str
    state_dir: Path
    """The local state directory (``$LLMAB_STATE_DIR``): the passphrases and the engine's work dirs."""
    passphrase_note: str
    """How the stack's secrets are encrypted, in words, for the log."""
    env: Mapping[str, str]


def toolchain_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with what ``scripts/toolchain env`` exports, the way
    ``eval "$(scripts/toolchain env)"`` would set it (for tests and benches that run the driver)."""
    import subprocess

    base = dict(os.environ if environ is None else environ)
    exports = subprocess.run([str(REPO_ROOT / "scripts" / "toolchain"), "env"], capture_output=True, text=True,
                             check=True, env=base).stdout
    env = dict(base)
    for line in exports.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip('"').replace("$PATH", base.get("PATH", ""))
    return env


def default_cache() -> Path:
    return Path(os.environ.get("LLMAB_CACHE", Path.home() / ".cache" / PROJECT))


def passphrase_file(state_dir: Path, stack: str) -> Path:
    return state_dir / "passphrases" / f"{PROJECT}.{stack}"


def ensure_passphrase(environ: Mapping[str, str], state_dir: Path, stack: str) -> tuple[dict[str, str], str]:
    """The passphrase the stack's secrets are encrypted with: the user's when set, else one file per
    stack, generated once (0600) beside the local state. Returns (env to add, a note for the log)."""
    for var in PASSPHRASE_VARS:
        if environ.get(var):
            return {}, f"passphrase from ${var}"
    if environ.get("PULUMI_BACKEND_URL", "").startswith(("s3://", "gs://", "azblob://", "https://")):
        raise DriverError(
            f"PULUMI_BACKEND_URL={environ['PULUMI_BACKEND_URL']} is a shared backend: set PULUMI_CONFIG_PASSPHRASE "
            "or PULUMI_CONFIG_PASSPHRASE_FILE to the passphrase of its stacks (a generated one would not match).")
    path = passphrase_file(state_dir, stack)
    if path.is_file():
        return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(path)}, f"passphrase in {path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32))
    return ({"PULUMI_CONFIG_PASSPHRASE_FILE": str(path)},
            f"passphrase generated into {path} (keep it: the stack's secrets can't be read without it)")


def resolve_engine(environ: Mapping[str, str], stack: str) -> Engine:
    """The engine set-up for ``stack`` from the environment ``scripts/toolchain env`` exports."""
    pulumi = environ.get("LLMAB_PULUMI", "")
    root: str | None = None
    if pulumi:
        path = Path(pulumi)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DriverError(f"LLMAB_PULUMI={pulumi} is not an executable: run scripts/toolchain engine "
                              "(it builds pulumi, ~20 min the first time) or put pulumi >= 3.272 on PATH")
        if path.parent.name != "bin":
            raise DriverError(f"LLMAB_PULUMI={pulumi} must be inside a directory named bin")
        root = str(path.parent.parent)
    cache = default_cache()
    state_dir = Path(environ.get("LLMAB_STATE_DIR") or cache / "state")
    home = environ.get("PULUMI_HOME") or str(cache / "pulumi-home")
    backend = environ.get("PULUMI_BACKEND_URL") or f"file://{state_dir}"
    if backend.startswith("file://"):
        Path(backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    extra, note = ensure_passphrase(environ, state_dir, stack)
    env = {
        "PULUMI_BACKEND_URL": backend,
        "PULUMI_HOME": home,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # The built-in credential generator is a dynamic resource: its host runs this python.
        "PULUMI_PYTHON_CMD": environ.get("PULUMI_PYTHON_CMD") or sys.executable,
        "LLMAB_PYTHON": sys.executable,
        **extra,
    }
    return Engine(pulumi_root=root, pulumi_home=home, backend_url=backend, state_dir=state_dir, passphrase_note=note,
                  env=env)


# --- the engine's copy of the stack file ----------------------------------------------------------
#
# Pulumi writes into the stack file of the directory it runs in: `encryptionsalt` when a passphrase
# stack is created (pulumi/pulumi#8408), and the driver once recorded the credential generator there
# too. Run in the repository, that left the tracked Pulumi.<stack>.yaml dirty with values nobody chose,
# and the tests (which read it) failed after `make up`. So the engine runs in a directory of the stack's
# own under the state directory, on a copy: the tracked file as the user wrote it, plus what only
# deployments write, kept there between runs.

SECRETS_PROVIDER_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")
"""Top-level stack-file keys holding the secrets provider's state; pulumi writes ``encryptionsalt`` itself."""
RECORDED_GENERATOR = "credentials-generator"
"""File (in :func:`engine_dir`) holding the credential generator the driver chose for a stack that set none."""


def engine_dir(state_dir: Path, stack: str) -> Path:
    """Where the engine runs for ``stack``: its copy of ``Pulumi.yaml`` and of the stack file, and what deployments
    recorded."""
    return state_dir / "workspaces" / f"{PROJECT}.{stack}"


def recorded_generator(directory: Path) -> str | None:
    """The credential generator recorded for the stack (:func:`record_generator`), or None."""
    path = directory / RECORDED_GENERATOR
    return (path.read_text().strip() or None) if path.is_file() else None


def record_generator(directory: Path, generator: str) -> Path:
    path = directory / RECORDED_GENERATOR
    path.write_text(f"{generator}\n")
    return path


def engine_project(project: Mapping[str, Any], work_dir: Path) -> dict[str, Any]:
    """``Pulumi.yaml`` as the engine's copy: the same, with a relative virtualenv made absolute (it is relative to
    the project directory, which the copy is not in)."""
    runtime = project.get("runtime")
    options = runtime.get("options") if isinstance(runtime, Mapping) else None
    venv = options.get("virtualenv") if isinstance(options, Mapping) else None
    if not (isinstance(runtime, Mapping) and isinstance(options, Mapping) and isinstance(venv, str)):
        return dict(project)
    return {**project, "runtime": {**runtime, "options": {**options, "virtualenv": str(work_dir / venv)}}}


def engine_stack_file(tracked: Mapping[str, Any], previous: Mapping[str, Any], generator: str | None
                      ) -> dict[str, Any]:
    """The stack file the engine runs on: ``tracked`` (the user's ``Pulumi.<stack>.yaml``), with the secrets
    provider's keys of the ``previous`` copy when ``tracked`` has none of its own, and ``generator`` (recorded by an
    earlier run) as ``credentials.generator`` when ``tracked`` sets none."""
    out = dict(tracked)
    if not any(key in tracked for key in SECRETS_PROVIDER_KEYS):
        out.update({key: previous[key] for key in SECRETS_PROVIDER_KEYS if key in previous})
    config = dict(out.get("config") or {})
    key = f"{PROJECT}:credentials"
    current = config.get(key)
    if generator is not None and not (isinstance(current, Mapping) and current.get("generator")):
        config[key] = {**(current if isinstance(current, Mapping) else {}), "generator": generator}
    if config:
        out["config"] = config
    return out


def prepare_engine_dir(work_dir: Path, state_dir: Path, stack: str) -> Path:
    """Write the engine's copies of ``work_dir``'s ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` (read, never written)
    into :func:`engine_dir`; returns that directory."""
    import yaml

    directory = engine_dir(state_dir, stack)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)

    def load(path: Path) -> dict[str, Any]:
        return dict(yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}

    name = f"Pulumi.{stack}.yaml"
    project = engine_project(load(work_dir / "Pulumi.yaml"), work_dir)
    stack_file = engine_stack_file(load(work_dir / name), load(directory / name), recorded_generator(directory))
    (directory / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    (directory / name).write_text(yaml.safe_dump(stack_file, sort_keys=False))
    return directory


def user_config(stack_file: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config`` of a stack file as its user chose it: without ``credentials.generator``, which drivers before
    :func:`prepare_engine_dir` wrote into the tracked file (tests read the shipped stacks through this, so an old
    deployment's leftovers cannot change what they test)."""
    config = dict(stack_file.get("config") or {})
    key = f"{PROJECT}:credentials"
    credentials = config.get(key)
    if isinstance(credentials, Mapping) and "generator" in credentials:
        rest = {k: v for k, v in credentials.items() if k != "generator"}
        if rest:
            config[key] = rest
        else:
            del config[key]
    return config


