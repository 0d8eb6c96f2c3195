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
    return Engine(pulumi_root=root, pulumi_home=home, backend_url=backend, passphrase_note=note, env=env)


