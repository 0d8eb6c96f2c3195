"""The Jobs install hash-locked requirements built for their image (components/joblock.py,
scripts/lock-requirements)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import PurePosixPath

import pytest

from components.joblock import JOB_PYTHON, LOCKS, REPO_ROOT, parse_lock, source_pins, wheel_fits_the_jobs, wheel_tags
from components.podspec import pip_then_python
from stacks.settings import SmokeSettings, StagingSettings
from tests.golden.render import RENDERS
from tests.harness import mocked_runtime, run_main

LOCK_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^\s=]+ --hash=sha256:[0-9a-f]{64}$")


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.package)
def test_every_line_of_a_job_lock_is_pinned_with_its_hash(lock) -> None:
    lines = [line for line in lock.lock.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines, f"{lock.lock} pins nothing"
    for line in lines:
        assert LOCK_LINE.match(line), f"{lock.lock.name}: {line!r} is not 'name==version --hash=sha256:<hex>'"


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.package)
def test_a_lock_has_exactly_the_pins_of_its_requirements_file(lock) -> None:
    locked = {p.name: p.version for p in parse_lock(lock.lock.read_text())}
    assert locked == source_pins(lock.source)


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.package)
def test_the_hashes_are_of_wheels_for_the_job_images_python_and_platform(lock) -> None:
    for pin in parse_lock(lock.lock.read_text()):
        name, version, _, _ = wheel_tags(pin.wheel)
        assert (name, version) == (pin.name, pin.version), pin
        assert wheel_fits_the_jobs(pin.wheel), f"{pin.wheel} is not installable on CPython {JOB_PYTHON} x86_64"


def test_wheel_fit_rejects_other_pythons_and_platforms() -> None:
    assert wheel_fits_the_jobs("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl")
    assert wheel_fits_the_jobs("rich-15.0.0-py3-none-any.whl")
    assert wheel_fits_the_jobs("hf_xet-1.8.0-cp38-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")
    assert not wheel_fits_the_jobs("hf_xet-1.8.0-cp312-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")
    assert not wheel_fits_the_jobs("numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl")
    assert not wheel_fits_the_jobs("numpy-2.4.6-cp311-cp311-macosx_14_0_arm64.whl")
    assert not wheel_fits_the_jobs("numpy-2.4.6-cp311-cp311-manylinux_2_28_aarch64.whl")
    assert not wheel_fits_the_jobs("numpy-2.4.6-cp311-cp311-musllinux_1_2_x86_64.whl")


def test_the_default_job_images_run_the_python_the_locks_are_for() -> None:
    for image in (StagingSettings().image, SmokeSettings().image):
        assert re.match(rf"^python:{re.escape(JOB_PYTHON)}\.\d+-slim", image), image


def test_the_lock_script_check_passes_offline_and_names_a_stale_lock(tmp_path, monkeypatch) -> None:
    script = REPO_ROOT / "scripts" / "lock-requirements"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("lock_requirements", str(script))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("lock_requirements", loader))
    loader.exec_module(module)
    from components.joblock import JobLock

    stale = tmp_path / "pkg"
    stale.mkdir()
    (stale / "requirements.txt").write_text("boto3==1.44.5\n")
    (stale / "requirements.lock").write_text(
        "# boto3-1.44.4-py3-none-any.whl\nboto3==1.44.4 --hash=sha256:" + "0" * 64 + "\n")
    monkeypatch.setattr(JobLock, "source", property(lambda _: stale / "requirements.txt"))
    monkeypatch.setattr(JobLock, "lock", property(lambda _: stale / "requirements.lock"))
    monkeypatch.setattr(module, "REPO_ROOT", tmp_path)
    assert module.check(JobLock("pkg")) == ["pkg/requirements.lock is out of date with pkg/requirements.txt"]


def test_the_install_command_requires_hashes_and_installs_only_the_locked_wheels() -> None:
    command = pip_then_python("/opt/x/requirements.lock", "-m x", name="x")
    assert command[:2] == ["/bin/sh", "-c"]
    assert "pip install " in command[2]
    assert "--require-hashes --no-deps --only-binary=:all:" in command[2]
    assert "-r /opt/x/requirements.lock " in command[2]


def _jobs_that_pip_install(mocks) -> list[tuple[str, dict, dict]]:
    found = []
    for r in mocks.resources:
        if r.typ != "kubernetes:batch/v1:Job":
            continue
        pod = r.inputs["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if "pip install" in " ".join(container.get("command") or []):
                found.append((r.name, container, pod))
    return found


@pytest.mark.parametrize("render", sorted(RENDERS))
def test_every_job_that_installs_from_pypi_installs_a_shipped_lock_with_hashes(render) -> None:
    stack, config = RENDERS[render]
    with mocked_runtime(stack=stack) as mocks:
        run_main(config())
        jobs = _jobs_that_pip_install(mocks)
        assert jobs, "no Job installs anything"
        # The mocks auto-name as Pulumi does: `<logical name>-abc123` (tests/harness.py).
        configmaps = {(r.inputs.get("metadata") or {}).get("name") or f"{r.name}-abc123": r for r in mocks.resources
                      if r.typ == "kubernetes:core/v1:ConfigMap"}
        locks = {lock.lock.read_text() for lock in LOCKS}
        for name, container, pod in jobs:
            lock_path = re.search(r"-r (\S+)", container["command"][2]).group(1)
            python_args = re.search(r"exec python (.+?) \"\$@\"", container["command"][2]).group(1)
            pythonpath = re.search(r"PYTHONPATH=/tmp/deps:?(\S*) ", container["command"][2]).group(1)
            assert container["command"] == pip_then_python(lock_path, python_args, name=container["command"][3],
                                                            pythonpath=pythonpath), name
            directory = str(PurePosixPath(lock_path).parent)
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
            (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            shipped = configmaps[volume["configMap"]["name"]].inputs["data"][PurePosixPath(lock_path).name]
            assert shipped in locks, f"{name} installs a lock that is not one of the repository's"
