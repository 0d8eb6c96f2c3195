"""Prompt sources (smoke case files, JSONL) and length controls."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.prompts import LengthControls, PromptFileError, from_case_files, from_jsonl, prepare
from tests.smoke.servers import BASE_ID, SHIPPED_CASES, SMALL_ID, SQUARE_ROOT_PROMPT


def test_case_files_give_prompts_scored_only_for_their_model() -> None:
    prompts = from_case_files([str(SHIPPED_CASES)])
    small = next(p for p in prompts if p.name == "square-root" and "flan-t5-small" in p.source)
    assert small.text == SQUARE_ROOT_PROMPT
    assert small.parameters["max_new_tokens"] == 32 and small.parameters["do_sample"] is False
    assert small.expectation_for(SMALL_ID) is not None
    assert small.expectation_for(BASE_ID) is None
    assert small.expectation_for(None) is None


def test_v2_case_files_are_ignored_and_a_tgi_free_selection_is_an_error() -> None:
    with pytest.raises(PromptFileError, match="no TGI case"):
        from_case_files([str(SHIPPED_CASES / "mnist-svm.yaml")])


def test_invalid_case_file_is_reported_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: tgi\ncases: [{name: x, prompt: y}]\n")
    with pytest.raises(PromptFileError, match=r"bad\.yaml: case 'x' \(cases\[0\]\): field 'expect': is required"):
        from_case_files([str(bad)])


def test_jsonl_prompts_with_defaults_parameters_and_expectations(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(
        "# a comment\n"
        '{"prompt": "Say hi", "name": "hi", "parameters": {"max_new_tokens": 4}, "expect": {"contains": "hi"}}\n'
        "\n"
        '{"prompt": "Count", "expect": {"non_empty": true}, "model": "google/flan-t5-base"}\n'
    )
    first, second = from_jsonl(str(path))
    assert first.name == "hi" and first.parameters == {"do_sample": False, "max_new_tokens": 4}
    assert first.expectation_for("anything") is not None
    assert second.name == "set.jsonl:4"
    assert second.expectation_for(BASE_ID) is not None and second.expectation_for(SMALL_ID) is None


def test_a_file_that_is_not_jsonl_names_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('prompts:\n  - "hello"\n{"prompt": ""}\n{"text": "x"}\n')
    with pytest.raises(PromptFileError) as caught:
        from_jsonl(str(path))
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{path}:1: not a JSON object (JSONL needs one per line)")
    assert lines[1].startswith(f"{path}:2: not a JSON object")
    assert any(line.startswith(f"{path}:3: field 'prompt':") for line in lines)
    assert any(line.startswith(f"{path}:4: field 'prompt': is required") for line in lines)
    assert any(line.startswith(f"{path}:4: field '(top level)': Additional properties") for line in lines)


def test_missing_or_empty_prompt_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PromptFileError, match="missing.jsonl: cannot read prompt file"):
        from_jsonl(str(tmp_path / "missing.jsonl"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n# only a comment\n")
    with pytest.raises(PromptFileError, match="empty.jsonl: no prompts"):
        from_jsonl(str(empty))


def test_length_controls_cut_the_prompt_and_set_token_limits() -> None:
    prompts = from_case_files([str(SHIPPED_CASES / "flan-t5-small.yaml")])
    controls = LengthControls(max_new_tokens=5, max_prompt_chars=10, truncate_tokens=64)
    prepared = prepare(prompts, controls)
    assert all(len(p.text) <= 10 for p in prepared)
    assert all(p.parameters["max_new_tokens"] == 5 and p.parameters["truncate"] == 64 for p in prepared)


def test_identical_prompts_from_two_model_files_merge_their_expectations() -> None:
    prompts = from_case_files([str(SHIPPED_CASES)])
    merged = prepare(prompts, LengthControls(max_new_tokens=8))
    square = next(p for p in merged if p.name == "square-root")
    assert len(merged) == 3  # the two files' cases agree once both ask for 8 tokens
    assert square.expectation_for(SMALL_ID).describe() == "exact '0'"  # type: ignore[union-attr]
    assert square.expectation_for(BASE_ID).describe() == "contains 'y = 16'"  # type: ignore[union-attr]


def test_length_controls_reject_zero() -> None:
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        LengthControls(max_new_tokens=0)
