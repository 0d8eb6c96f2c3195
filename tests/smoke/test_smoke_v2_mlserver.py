"""V2 checks against a real MLServer serving a scikit-learn digits SVM (the ModelMesh quickstart model)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.smoke.servers import MNIST_MODEL, RunningServer

RunCli = Callable[..., tuple[int, str, str]]

pytestmark = pytest.mark.slow


def test_shipped_mnist_case_passes_against_mlserver(
    run_cli: RunCli, mlserver: RunningServer, shipped_cases: Path
) -> None:
    code, out, err = run_cli(
        "--v2-url", mlserver.url, "--v2-model", MNIST_MODEL, "--cases", str(shipped_cases / "mnist-svm.yaml"), "--json"
    )

    assert code == 0, err
    (check,) = json.loads(out)["checks"]
    assert (check["target"], check["name"], check["status"]) == ("v2 mnist-svm", "infer digit-8", "pass")
    assert check["data"]["outputs"][0]["shape"] == [1, 1]
    assert check["data"]["outputs"][0]["data"] == [8]


def test_wrong_expected_value_fails_with_what_came_back(
    run_cli: RunCli, mlserver: RunningServer, tmp_path: Path
) -> None:
    cases = tmp_path / "mnist-wrong.yaml"
    cases.write_text(
        textwrap.dedent(f"""\
        kind: v2
        model: {MNIST_MODEL}
        cases:
          - name: zeros-are-not-a-three
            inputs:
              - {{name: predict, shape: [2, 64], datatype: FP32, data: {[0.0] * 128}}}
            expect:
              outputs:
                - {{name: predict, shape: [2, 1], data: [3, 3]}}
        """)
    )

    code, out, _ = run_cli("--v2-url", mlserver.url, "--cases", str(cases), "--json")

    assert code == 1
    (check,) = json.loads(out)["checks"]
    assert check["status"] == "fail"
    assert "output 'predict': 2 value(s) outside tolerance 0.0; first at [0]" in check["detail"]
    assert "expected 3" in check["detail"]


def test_unknown_model_fails_within_the_deadline_with_the_servers_answer(
    run_cli: RunCli, mlserver: RunningServer, shipped_cases: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(
        (shipped_cases / "mnist-svm.yaml").read_text().replace(f"model: {MNIST_MODEL}", "model: no-such-model")
    )

    code, out, _ = run_cli("--v2-url", mlserver.url, "--cases", str(renamed), "--timeout", "1.5", "--json")

    assert code == 1
    detail = json.loads(out)["checks"][0]["detail"]
    assert "/v2/models/no-such-model/infer" in detail and "HTTP 404" in detail
