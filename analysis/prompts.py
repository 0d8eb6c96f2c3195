"""Prompts for the load: the smoke package's case files or a JSONL prompt set, with length controls.

Both variants get the same prompts with the same parameters (the comparison stays fair); what
differs per variant is only which expectations score its answers. A case from a file that names
a ``model:`` scores a variant whose model matches it (:func:`smoke.tgi.model_matches`); a case
without a model scores every variant.

JSONL prompt set: one JSON object per line (blank lines and lines starting with ``#`` are
skipped)::

    {"prompt": "Translate to German: good morning", "name": "greet",
     "parameters": {"max_new_tokens": 16}, "expect": {"contains": "Morgen"}, "model": "google/flan-t5-base"}

Only ``prompt`` is required; ``parameters`` and ``expect`` follow the smoke case schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from smoke.cases import (
    GREEDY_DEFAULTS,
    TGI_SCHEMA,
    CaseFileError,
    Expectation,
    load_case_files,
    schema_errors,
)
from smoke.tgi import model_matches

_CASE_ITEM = TGI_SCHEMA["properties"]["cases"]["items"]["properties"]
JSONL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["prompt"],
    "additionalProperties": False,
    "properties": {
        "name": _CASE_ITEM["name"],
        "prompt": {"type": "string", "minLength": 1},
        "parameters": _CASE_ITEM["parameters"],
        "expect": _CASE_ITEM["expect"],
        "model": {"type": "string", "minLength": 1},
    },
}


class PromptFileError(Exception):
    """A prompt file or case file cannot be used; the message names the file and line or case."""


@dataclass(frozen=True)
class ScoredExpectation:
    """An expectation and the model it is for (None: any model)."""

    model: str | None
    expect: Expectation


@dataclass(frozen=True)
class Prompt:
    """One prompt as sent to every variant."""

    name: str
    text: str
    parameters: Mapping[str, Any]
    """TGI-style generation parameters (``max_new_tokens``, ``do_sample``, ...); engines translate."""
    expectations: tuple[ScoredExpectation, ...] = ()
    source: str = ""

    def expectation_for(self, model: str | None) -> Expectation | None:
        """The expectation scoring a variant serving ``model`` (None: not scored for it)."""
        for scored in self.expectations:
            if scored.model is None or (model is not None and model_matches(scored.model, model)):
                return scored.expect
        return None


@dataclass(frozen=True)
class LengthControls:
    """Input/output length controls applied to every prompt."""

    max_new_tokens: int | None = None
    """Override of every prompt's ``max_new_tokens``."""
    max_prompt_chars: int | None = None
    """Cut every prompt to at most this many characters (client side, engine-independent)."""
    truncate_tokens: int | None = None
    """Ask the server to keep only the last N prompt tokens (TGI ``truncate``, vLLM ``truncate_prompt_tokens``)."""

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_prompt_chars", "truncate_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    def apply(self, prompt: Prompt) -> Prompt:
        """The prompt with these controls applied."""
        parameters = dict(prompt.parameters)
        if self.max_new_tokens is not None:
            parameters["max_new_tokens"] = self.max_new_tokens
        if self.truncate_tokens is not None:
            parameters["truncate"] = self.truncate_tokens
        text = prompt.text if self.max_prompt_chars is None else prompt.text[: self.max_prompt_chars]
        return replace(prompt, text=text, parameters=parameters)


def from_case_files(paths: Iterable[str]) -> list[Prompt]:
    """Prompts from smoke case files (``kind: tgi``; ``kind: v2`` files are ignored)."""
    try:
        tgi_files, _ = load_case_files(paths)
    except CaseFileError as err:
        raise PromptFileError(f"invalid case file:\n{err}") from None
    prompts = [
        Prompt(
            name=case.name,
            text=case.prompt,
            parameters=dict(case.parameters),
            expectations=(ScoredExpectation(case_file.model, case.expect),),
            source=case.source,
        )
        for case_file in tgi_files
        for case in case_file.cases
    ]
    if not prompts:
        raise PromptFileError(f"no TGI case (kind: tgi) in {', '.join(paths) or 'the given paths'}")
    return prompts


def from_jsonl(path: str) -> list[Prompt]:
    """Prompts from a JSONL file; :class:`PromptFileError` lists every bad line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise PromptFileError(f"{path}: cannot read prompt file: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise PromptFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    prompts: list[Prompt] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except ValueError as err:
            problems.append(f"{where}: not a JSON object (JSONL needs one per line): {err}")
            continue
        errors = schema_errors(where, item, JSONL_SCHEMA)
        if errors:
            problems.extend(errors)
            continue
        expectations: tuple[ScoredExpectation, ...] = ()
        if "expect" in item:
            ((kind, value),) = item["expect"].items()
            expectations = (
                ScoredExpectation(item.get("model"), Expectation(kind, "" if kind == "non_empty" else value)),
            )
        prompts.append(
            Prompt(
                name=item.get("name", f"{Path(path).name}:{number}"),
                text=item["prompt"],
                parameters={**GREEDY_DEFAULTS, **item.get("parameters", {})},
                expectations=expectations,
                source=where,
            )
        )
    if problems:
        raise PromptFileError("\n".join(problems))
    if not prompts:
        raise PromptFileError(f"{path}: no prompts (the file is empty or only comments)")
    return prompts


def prepare(prompts: Sequence[Prompt], controls: LengthControls) -> list[Prompt]:
    """Apply length controls, then merge prompts that became identical (their expectations join)."""
    merged: dict[tuple[str, str, str], Prompt] = {}
    for prompt in (controls.apply(p) for p in prompts):
        key = (prompt.name, prompt.text, json.dumps(prompt.parameters, sort_keys=True))
        if key in merged:
            first = merged[key]
            merged[key] = replace(first, expectations=first.expectations + prompt.expectations)
        else:
            merged[key] = prompt
    return list(merged.values())
