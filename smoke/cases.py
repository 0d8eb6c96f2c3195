"""Smoke test cases: the YAML format, its JSON Schema, and loading with errors that say where.

Two kinds of case file exist, told apart by the top-level ``kind`` key:

``kind: tgi``
    Text-generation cases for one model (``model:``, the whole repo id, matched with
    :func:`smoke.identity.repo_matches`; without ``model:`` the cases apply to every variant; a
    served model no file names gets the built-in :data:`GENERIC_CASE`, which the stack settings allow only
    with ``smoke.allowGenericCases``). Each case has a ``name``, a ``prompt``,
    optional TGI ``parameters`` (merged over the greedy defaults :data:`GREEDY_DEFAULTS`, so
    outputs are deterministic), exactly one expectation (``exact``, ``contains``, ``regex`` or
    ``non_empty: true``), a latency bound ``max_latency_s`` and the ``route`` to call, which means
    the same on both APIs (TGI's native one; the OpenAI-compatible one, :mod:`smoke.openai`):
    ``generate`` (TGI ``POST /generate``; ``/v1/completions``), ``compat`` (TGI ``POST /``;
    ``/v1/completions``), ``chat`` (``/v1/chat/completions`` on both, with the model's chat
    template) and ``stream`` (TGI ``/generate_stream``; ``/v1/completions`` with ``stream: true``),
    the streamed text joined. The file names no engine: the variant's engine picks the API.

``kind: v2``
    V2-protocol (KServe / ModelMesh REST) cases for the model named by ``model:``. Each case
    has input tensors and the expected output tensors: shape, optional datatype, and values
    compared within an absolute ``tolerance``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .identity import repo_matches

GREEDY_DEFAULTS: Mapping[str, Any] = {"do_sample": False, "max_new_tokens": 32}
"""TGI parameters every case starts from: greedy decoding and a bounded output length."""

DEFAULT_MAX_LATENCY_S = 60.0
"""Latency bound for a case that sets none (CPU generation takes seconds)."""

EXPECTATION_KINDS = ("exact", "contains", "regex", "non_empty")
V2_DATATYPES = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
)
TGI_PARAMETERS = (
    "best_of",
    "temperature",
    "repetition_penalty",
    "frequency_penalty",
    "top_k",
    "top_p",
    "typical_p",
    "do_sample",
    "max_new_tokens",
    "return_full_text",
    "stop",
    "truncate",
    "watermark",
    "details",
    "decoder_input_details",
    "seed",
    "top_n_tokens",
    "grammar",
    "adapter_id",
)

_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "maxLength": 63}
_LATENCY = {"type": "number", "exclusiveMinimum": 0}
_ROUTE = {"enum": ["generate", "compat", "chat", "stream"]}
_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{key: {} for key in TGI_PARAMETERS},
        "do_sample": {"type": "boolean"},
        "max_new_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "exclusiveMinimum": 0},
        "top_k": {"type": "integer", "minimum": 1},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "seed": {"type": "integer", "minimum": 0},
        "stop": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
        "return_full_text": {"type": "boolean"},
        "details": {"type": "boolean"},
        "repetition_penalty": {"type": "number", "exclusiveMinimum": 0},
    },
}
_EXPECT: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "exact": {"type": "string"},
        "contains": {"type": "string", "minLength": 1},
        "regex": {"type": "string", "format": "regex"},
        "non_empty": {"const": True},
    },
}
_TENSOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"enum": list(V2_DATATYPES)},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
_EXPECTED_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["shape", "data"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"enum": list(V2_DATATYPES)},
        "data": {"type": "array"},
        "tolerance": {"type": "number", "minimum": 0},
    },
}

KIND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind"],
    "properties": {"kind": {"enum": ["tgi", "v2"]}},
}
TGI_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["kind", "cases"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "tgi"},
        "model": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"parameters": _PARAMETERS, "max_latency_s": _LATENCY, "route": _ROUTE},
        },
        "cases": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "prompt", "expect"],
                "additionalProperties": False,
                "properties": {
                    "name": _NAME,
                    "description": {"type": "string"},
                    "prompt": {"type": "string", "minLength": 1},
                    "parameters": _PARAMETERS,
                    "expect": _EXPECT,
                    "max_latency_s": _LATENCY,
                    "route": _ROUTE,
                },
            },
        },
    },
}
V2_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["kind", "model", "cases"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "v2"},
        "model": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"max_latency_s": _LATENCY},
        },
        "cases": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "inputs", "expect"],
                "additionalProperties": False,
                "properties": {
                    "name": _NAME,
                    "description": {"type": "string"},
                    "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
                    "expect": {
                        "type": "object",
                        "required": ["outputs"],
                        "additionalProperties": False,
                        "properties": {
                            "outputs": {"type": "array", "minItems": 1, "items": _EXPECTED_OUTPUT},
                        },
                    },
                    "max_latency_s": _LATENCY,
                },
            },
        },
    },
}


class CaseFileError(Exception):
    """A case file cannot be read or does not follow the schema; the message names file, case, field."""


@dataclass(frozen=True)
class Expectation:
    """What a generated text must satisfy: one of exact, contains, regex or non_empty."""

    kind: str
    value: str = ""

    def describe(self) -> str:
        """Short human form, e.g. ``exact '0'``."""
        return "non-empty" if self.kind == "non_empty" else f"{self.kind} {self.value!r}"

    def mismatch(self, text: str) -> str | None:
        """None when ``text`` satisfies the expectation, else why not.

        ``exact`` compares after stripping surrounding whitespace on both sides; ``contains`` is
        a substring test; ``regex`` uses :func:`re.search` (use ``(?i)`` etc. for flags);
        ``non_empty`` needs some non-whitespace text.
        """
        ok = {
            "exact": lambda: text.strip() == self.value.strip(),
            "contains": lambda: self.value in text,
            "regex": lambda: re.search(self.value, text) is not None,
            "non_empty": lambda: text.strip() != "",
        }[self.kind]()
        return None if ok else f"expected {self.describe()}, got {_clip(text)!r}"


@dataclass(frozen=True)
class TgiCase:
    """One text-generation case."""

    name: str
    prompt: str
    parameters: Mapping[str, Any]
    expect: Expectation
    max_latency_s: float
    route: str
    source: str


@dataclass(frozen=True)
class TgiCaseFile:
    """The TGI cases of one file, for one model (or any model when ``model`` is None)."""

    path: str
    model: str | None
    cases: tuple[TgiCase, ...]


@dataclass(frozen=True)
class V2Output:
    """An expected V2 output tensor; values are compared within ``tolerance`` (absolute)."""

    name: str | None
    shape: tuple[int, ...]
    datatype: str | None
    data: tuple[Any, ...]
    tolerance: float
    compare_values: bool = True
    """False for a borrowed case (:func:`borrowed_v2_file`): shape and datatype only."""


@dataclass(frozen=True)
class V2Case:
    """One V2 infer case: the request inputs and the expected outputs."""

    name: str
    inputs: tuple[Mapping[str, Any], ...]
    outputs: tuple[V2Output, ...]
    max_latency_s: float
    source: str


@dataclass(frozen=True)
class V2CaseFile:
    """The V2 cases of one file, for the model named ``model``."""

    path: str
    model: str
    cases: tuple[V2Case, ...]


GENERIC_SOURCE = "built-in generic case"
GENERIC_CASE = TgiCase(
    name="generic-non-empty",
    prompt="Complete the sentence: On a clear day the sky is",
    parameters={**GREEDY_DEFAULTS, "max_new_tokens": 16},
    expect=Expectation("non_empty"),
    max_latency_s=DEFAULT_MAX_LATENCY_S,
    route="generate",
    source=GENERIC_SOURCE,
)
"""Run on a served model that no case file names: one inference, greedy, at most 16 new tokens,
any non-empty text (so no variant passes on /health and /info alone)."""


def generic_case_file() -> TgiCaseFile:
    """The built-in case as a case file that applies to any model."""
    return TgiCaseFile(path=GENERIC_SOURCE, model=None, cases=(GENERIC_CASE,))


def files_naming(files: Iterable[TgiCaseFile], model: str) -> list[TgiCaseFile]:
    """The case files whose ``model:`` is ``model`` (the whole repo id, :func:`smoke.identity.repo_matches`):
    what checks a variant's answers. A file without ``model:`` applies to every model and names none."""
    return [f for f in files if f.model is not None and repo_matches(f.model, model)]


def borrowed_v2_file(source: V2CaseFile, model: str) -> V2CaseFile:
    """``source``'s cases for another V2 model (the candidate of an A/B pair, which takes the same
    inputs): the same requests, checked for the expected outputs' names, shapes and datatypes only,
    since a different model may predict different values."""
    cases = tuple(
        dataclasses.replace(case, outputs=tuple(dataclasses.replace(o, compare_values=False) for o in case.outputs),
                            source=f"{case.source} (inputs; outputs by shape and datatype)")
        for case in source.cases
    )
    return V2CaseFile(path=source.path, model=model, cases=cases)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def flatten(data: Any) -> list[Any]:
    """Flatten nested lists (V2 accepts flat or shape-nested ``data``)."""
    if isinstance(data, list | tuple):
        return [leaf for item in data for leaf in flatten(item)]
    return [data]


def expand_paths(paths: Iterable[str]) -> list[Path]:
    """Files as given, and for a directory its ``*.yaml``/``*.yml`` files in name order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def load_case_files(paths: Iterable[str]) -> tuple[list[TgiCaseFile], list[V2CaseFile]]:
    """Read and validate every case file; raise :class:`CaseFileError` listing all problems."""
    tgi: list[TgiCaseFile] = []
    v2: list[V2CaseFile] = []
    problems: list[str] = []
    for path in expand_paths(paths):
        try:
            loaded = load_case_file(path)
        except CaseFileError as err:
            problems.append(str(err))
            continue
        if isinstance(loaded, TgiCaseFile):
            tgi.append(loaded)
        else:
            v2.append(loaded)
    if problems:
        raise CaseFileError("\n".join(problems))
    return tgi, v2


def load_case_file(path: Path) -> TgiCaseFile | V2CaseFile:
    """Read one YAML case file and validate it against its schema."""
    document = _read_yaml(path)
    _raise_on_errors(path, document, KIND_SCHEMA)
    if document["kind"] == "tgi":
        _raise_on_errors(path, document, TGI_SCHEMA)
        _check_unique_names(path, document)
        return _build_tgi(path, document)
    _raise_on_errors(path, document, V2_SCHEMA)
    _check_unique_names(path, document)
    _check_tensor_sizes(path, document)
    return _build_v2(path, document)


def case_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a valid case file (every problem, the file called by its name), or None."""
    try:
        load_case_file(path)
    except CaseFileError as err:
        return str(err).replace(str(path), path.name)
    return None


def validate_document(document: Any, where: str = "<document>") -> list[str]:
    """All schema problems of an already-parsed case document (empty list when valid)."""
    kind_errors = schema_errors(where, document, KIND_SCHEMA)
    if kind_errors:
        return kind_errors
    schema = TGI_SCHEMA if document["kind"] == "tgi" else V2_SCHEMA
    return schema_errors(where, document, schema)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise CaseFileError(f"{path}: cannot read case file: {err.strerror or err}") from err
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise CaseFileError(f"{path}{where}: not valid YAML: {problem}") from err
    if document is None:
        raise CaseFileError(f"{path}: case file is empty")
    return document


def schema_errors(where: str, document: Any, schema: Mapping[str, Any]) -> list[str]:
    """Schema problems as lines ``<file>: case '<name>' (cases[i]): field '<path>': <message>``."""
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [_describe_error(where, document, error) for error in errors]


def _raise_on_errors(path: Path, document: Any, schema: Mapping[str, Any]) -> None:
    problems = schema_errors(str(path), document, schema)
    if problems:
        raise CaseFileError("\n".join(problems))


def _describe_error(where: str, document: Any, error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    prefix = where
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
        prefix += f": {_case_label(document, path[1])}"
        field_path = path[2:]
    else:
        field_path = path
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        field_path = [*field_path, missing]
        message = "is required"
    else:
        message = _friendly_message(error)
    field = _dotted(field_path) if field_path else "(top level)"
    return f"{prefix}: field '{field}': {message}"


def _friendly_message(error: jsonschema.ValidationError) -> str:
    properties = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
    if error.validator in ("minProperties", "maxProperties") and set(properties) == set(EXPECTATION_KINDS):
        return f"must name exactly one of {', '.join(EXPECTATION_KINDS)}; got {error.instance!r}"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(properties))
        return f"{error.message} (allowed: {allowed})"
    if error.validator == "format" and error.validator_value == "regex":
        return f"{error.instance!r} is not a valid regular expression"
    return str(error.message)


def _dotted(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _case_label(document: Any, index: int) -> str:
    try:
        name = document["cases"][index]["name"]
    except (KeyError, IndexError, TypeError):
        name = None
    return f"case {name!r} (cases[{index}])" if isinstance(name, str) else f"case cases[{index}]"


def _check_unique_names(path: Path, document: Mapping[str, Any]) -> None:
    seen: dict[str, int] = {}
    problems = []
    for index, case in enumerate(document["cases"]):
        if case["name"] in seen:
            problems.append(
                f"{path}: {_case_label(document, index)}: field 'name': duplicate of cases[{seen[case['name']]}]"
            )
        seen.setdefault(case["name"], index)
    if problems:
        raise CaseFileError("\n".join(problems))


def _check_tensor_sizes(path: Path, document: Mapping[str, Any]) -> None:
    problems = []
    for index, case in enumerate(document["cases"]):
        tensors = [("inputs", case["inputs"]), ("expect.outputs", case["expect"]["outputs"])]
        for field, items in tensors:
            for t_index, tensor in enumerate(items):
                want = math.prod(tensor["shape"])
                got = len(flatten(tensor["data"]))
                if want != got:
                    problems.append(
                        f"{path}: {_case_label(document, index)}: field '{field}[{t_index}].data': "
                        f"has {got} values but shape {tensor['shape']} needs {want}"
                    )
    if problems:
        raise CaseFileError("\n".join(problems))


def _build_tgi(path: Path, document: Mapping[str, Any]) -> TgiCaseFile:
    defaults = document.get("defaults", {})
    cases = []
    for raw in document["cases"]:
        ((kind, value),) = raw["expect"].items()
        parameters = {**GREEDY_DEFAULTS, **defaults.get("parameters", {}), **raw.get("parameters", {})}
        cases.append(
            TgiCase(
                name=raw["name"],
                prompt=raw["prompt"],
                parameters=parameters,
                expect=Expectation(kind, "" if kind == "non_empty" else value),
                max_latency_s=float(raw.get("max_latency_s", defaults.get("max_latency_s", DEFAULT_MAX_LATENCY_S))),
                route=raw.get("route", defaults.get("route", "generate")),
                source=str(path),
            )
        )
    return TgiCaseFile(path=str(path), model=document.get("model"), cases=tuple(cases))


def _build_v2(path: Path, document: Mapping[str, Any]) -> V2CaseFile:
    defaults = document.get("defaults", {})
    cases = []
    for raw in document["cases"]:
        outputs = tuple(
            V2Output(
                name=out.get("name"),
                shape=tuple(out["shape"]),
                datatype=out.get("datatype"),
                data=tuple(flatten(out["data"])),
                tolerance=float(out.get("tolerance", 0.0)),
            )
            for out in raw["expect"]["outputs"]
        )
        cases.append(
            V2Case(
                name=raw["name"],
                inputs=tuple(raw["inputs"]),
                outputs=outputs,
                max_latency_s=float(raw.get("max_latency_s", defaults.get("max_latency_s", DEFAULT_MAX_LATENCY_S))),
                source=str(path),
            )
        )
    return V2CaseFile(path=str(path), model=document["model"], cases=tuple(cases))
