"""Pure tests of case files (schema, errors that say where), expectations, lenient model matching (for
analysis scoring; the gate's identity is tests/smoke/test_smoke_identity.py's), V2 comparison."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from smoke.cases import (
    GREEDY_DEFAULTS,
    CaseFileError,
    Expectation,
    V2Output,
    load_case_file,
    load_case_files,
    validate_document,
)
from smoke.modelmesh import Inference, output_mismatches
from smoke.tgi import model_matches

SHA = "0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab"


def _write(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(CaseFileError) as caught:
        load_case_file(path)
    return str(caught.value)


def test_shipped_case_files_are_valid_and_cover_both_tutorial_models_and_modelmesh(shipped_cases: Path) -> None:
    tgi, v2 = load_case_files([str(shipped_cases)])

    assert sorted(f.model for f in tgi) == ["google/flan-t5-base", "google/flan-t5-small"]
    assert [f.model for f in v2] == ["mnist-svm"]
    small = next(f for f in tgi if f.model == "google/flan-t5-small")
    square_root = small.cases[0]
    assert square_root.expect == Expectation("exact", "0")
    assert square_root.parameters["do_sample"] is False
    assert v2[0].cases[0].outputs[0].data == (8,)


def test_parameters_are_greedy_by_default_and_cases_override_file_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        kind: tgi
        defaults: {parameters: {max_new_tokens: 10}, max_latency_s: 5}
        cases:
          - {name: a, prompt: p, expect: {non_empty: true}}
          - {name: b, prompt: p, expect: {non_empty: true}, parameters: {max_new_tokens: 3, seed: 1}, max_latency_s: 2}
        """,
    )

    loaded = load_case_file(path)

    a, b = loaded.cases
    assert loaded.model is None
    assert a.parameters == {**GREEDY_DEFAULTS, "max_new_tokens": 10} and a.max_latency_s == 5.0
    assert b.parameters == {"do_sample": False, "max_new_tokens": 3, "seed": 1} and b.max_latency_s == 2.0
    assert a.route == "generate"


def test_two_expectations_name_the_file_case_and_field(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        """\
        kind: tgi
        cases:
          - {name: ok, prompt: p, expect: {exact: "0"}}
          - {name: greedy, prompt: p, expect: {exact: "0", regex: "1"}}
        """,
    )

    assert message.startswith(
        f"{tmp_path / 'cases.yaml'}: case 'greedy' (cases[1]): field 'expect': must name exactly one of"
    )


def test_missing_prompt_is_reported_as_a_required_field(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        """\
        kind: tgi
        cases:
          - {name: no-prompt, expect: {non_empty: true}}
        """,
    )

    assert message.endswith("case 'no-prompt' (cases[0]): field 'prompt': is required")


def test_misspelt_parameter_lists_the_allowed_ones(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        """\
        kind: tgi
        cases:
          - {name: typo, prompt: p, expect: {non_empty: true}, parameters: {max_new_token: 5}}
        """,
    )

    assert (
        "case 'typo' (cases[0]): field 'parameters': Additional properties are not allowed ('max_new_token'" in message
    )
    assert "max_new_tokens" in message


def test_invalid_regex_and_wrong_types_are_all_reported(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        """\
        kind: tgi
        cases:
          - {name: bad-regex, prompt: p, expect: {regex: "(unclosed"}}
          - {name: bad-latency, prompt: p, expect: {non_empty: true}, max_latency_s: 0}
        """,
    )

    lines = message.splitlines()
    assert len(lines) == 2
    assert (
        "case 'bad-regex' (cases[0]): field 'expect.regex': '(unclosed' is not a valid regular expression" in lines[0]
    )
    assert "case 'bad-latency' (cases[1]): field 'max_latency_s'" in lines[1]


def test_duplicate_case_names_are_rejected(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        """\
        kind: tgi
        cases:
          - {name: same, prompt: p, expect: {non_empty: true}}
          - {name: same, prompt: q, expect: {non_empty: true}}
        """,
    )

    assert message.endswith("case 'same' (cases[1]): field 'name': duplicate of cases[0]")


def test_unknown_kind_and_missing_cases_are_top_level_errors() -> None:
    assert validate_document({"kind": "grpc"}, "x.yaml") == ["x.yaml: field 'kind': 'grpc' is not one of ['tgi', 'v2']"]
    assert validate_document({"kind": "tgi"}, "x.yaml") == ["x.yaml: field 'cases': is required"]
    assert validate_document(["a list"], "x.yaml") == [
        "x.yaml: field '(top level)': ['a list'] is not of type 'object'"
    ]


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    message = _error(tmp_path, "kind: tgi\ncases:\n  - name: [unclosed\n")

    assert message.startswith(f"{tmp_path / 'cases.yaml'} (line 4, column 1): not valid YAML")


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    assert _error(tmp_path, "").endswith("case file is empty")


def test_v2_tensor_data_must_fit_its_shape(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        """\
        kind: v2
        model: iris
        cases:
          - name: short
            inputs: [{name: predict, shape: [1, 4], datatype: FP32, data: [1, 2, 3]}]
            expect: {outputs: [{shape: [1, 1], data: [[2]]}]}
        """,
    )

    assert message.endswith("case 'short' (cases[0]): field 'inputs[0].data': has 3 values but shape [1, 4] needs 4")


def test_v2_case_file_needs_a_model_name(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        """\
        kind: v2
        cases:
          - name: x
            inputs: [{name: predict, shape: [1], datatype: FP32, data: [1]}]
            expect: {outputs: [{shape: [1], data: [1]}]}
        """,
    )

    assert message.endswith("field 'model': is required")


def test_all_bad_files_are_reported_together(tmp_path: Path) -> None:
    first = _write(tmp_path, "kind: nope\n", "a.yaml")
    second = _write(tmp_path, "kind: tgi\ncases: []\n", "b.yaml")

    with pytest.raises(CaseFileError) as caught:
        load_case_files([str(first), str(second)])

    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{first}: field 'kind'")
    assert lines[1].startswith(f"{second}: field 'cases': [] should be non-empty")


@pytest.mark.parametrize(
    ("expectation", "text", "ok"),
    [
        (Expectation("exact", "0"), " 0\n", True),
        (Expectation("exact", "0"), "00", False),
        (Expectation("contains", "y = 16"), "x = 16 y = 16 to the power", True),
        (Expectation("regex", "(?i)^paris$"), "Paris", True),
        (Expectation("regex", "^x = 4"), "y = 4", False),
        (Expectation("non_empty"), "  ", False),
        (Expectation("non_empty"), "a", True),
    ],
)
def test_expectations(expectation: Expectation, text: str, ok: bool) -> None:
    assert (expectation.mismatch(text) is None) is ok


def test_mismatch_message_shows_expected_and_actual() -> None:
    assert Expectation("exact", "0").mismatch("42") == "expected exact '0', got '42'"


@pytest.mark.parametrize(
    ("expected", "served", "matches"),
    [
        ("google/flan-t5-small", "google/flan-t5-small", True),
        ("google/flan-t5-small", f"/mnt/datasets/model-weights/flan-t5-small/{SHA}", True),
        ("flan-t5-small", f"/mnt/datasets/model-weights/flan-t5-small/{SHA}", True),
        (f"flan-t5-small/{SHA}", f"/mnt/datasets/model-weights/flan-t5-small/{SHA}", True),
        ("flan-t5-small", "/mnt/datasets/model-weights/flan-t5-small", True),
        ("flan-t5-small", "/mnt/datasets/model-weights/flan-t5-small/main", True),
        ("google/flan-t5-small", "/mnt/datasets/model-weights/google/flan-t5-small/", True),
        ("google/flan-t5-base", f"/mnt/datasets/model-weights/flan-t5-small/{SHA}", False),
        ("t5-small", f"/mnt/datasets/model-weights/flan-t5-small/{SHA}", False),
        ("model-weights", "/mnt/datasets/model-weights/flan-t5-small", False),
        ("flan-t5-small", "/mnt/datasets/model-weights/flan-t5-small/v2-experimental", False),
        ("flan-t5-small", "", False),
    ],
)
def test_model_matching_rule(expected: str, served: str, matches: bool) -> None:
    assert model_matches(expected, served) is matches


def test_v2_outputs_compare_shape_datatype_values_and_model_name_prefix() -> None:
    want = (V2Output(name="predict", shape=(1, 2), datatype="FP32", data=(0.5, 1.0), tolerance=0.01),)
    close = Inference(
        "iris__isvc-6b2eb0b8bf", [{"name": "predict", "shape": [1, 2], "datatype": "FP32", "data": [0.505, 0.999]}], 0.1
    )
    far = Inference("other", [{"name": "predict", "shape": [2], "datatype": "FP64", "data": [0.5, 1.2]}], 0.1)

    assert output_mismatches("iris", want, close) == []
    problems = output_mismatches("iris", want, far)
    assert problems[0] == "model_name 'other' does not start with 'iris'"
    assert "shape [2] != expected [1, 2]" in problems[1]
    assert "datatype 'FP64' != expected 'FP32'" in problems[2]
    assert "first at [1]: got 1.2, expected 1.0" in problems[3]


def test_v2_missing_output_lists_what_was_returned() -> None:
    want = (V2Output(name="probabilities", shape=(1,), datatype=None, data=(1,), tolerance=0),)
    got = Inference("iris", [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [1]}], 0.1)

    assert output_mismatches("iris", want, got) == ["output 'probabilities' missing; outputs returned: ['predict']"]
