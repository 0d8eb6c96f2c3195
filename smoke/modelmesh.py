"""V2 inference-protocol call (ModelMesh REST proxy) and output comparison.

The ModelMesh REST proxy exposes only ``POST /v2/models/{name}/infer`` (no health or metadata
routes), so the infer call itself is the readiness probe. While a predictor is still being
registered ModelMesh answers NOT_FOUND (HTTP 404), so readiness retries 404 too. The
``model_name`` echoed back is ``<isvc>__isvc-<hash>`` rather than the plain name, so it is
compared by prefix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .cases import V2Case, V2Output, flatten
from .net import TRANSIENT_STATUS, EndpointError, RetryPolicy, excerpt, json_body, request_ok

READINESS_STATUS: frozenset[int] = TRANSIENT_STATUS | {404}
"""Statuses retried until the deadline on the first infer: starting, overloaded, not yet registered."""


@dataclass(frozen=True)
class Inference:
    """A V2 infer answer and how long it took."""

    model_name: str
    outputs: Sequence[Mapping[str, Any]]
    latency_s: float


def infer_url(base_url: str, model: str) -> str:
    """``<base>/v2/models/<model>/infer``."""
    return f"{base_url.rstrip('/')}/v2/models/{model}/infer"


def infer(client: httpx.Client, base_url: str, model: str, case: V2Case, policy: RetryPolicy) -> Inference:
    """POST the case's inputs; return the outputs or raise :class:`EndpointError`."""
    url = infer_url(base_url, model)
    body = {"id": f"smoke-{case.name}", "inputs": [dict(tensor) for tensor in case.inputs]}
    response = request_ok(client, "POST", url, timeout=case.max_latency_s, policy=policy, body=body)
    payload = json_body(response, "POST", url)
    outputs = payload.get("outputs") if isinstance(payload, dict) else None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise EndpointError(f"POST {url}: no outputs list in {excerpt(response)}")
    return Inference(
        model_name=str(payload.get("model_name", "")),
        outputs=outputs,
        latency_s=response.elapsed.total_seconds(),
    )


def output_mismatches(model: str, expected: Sequence[V2Output], result: Inference) -> list[str]:
    """Every way the answer differs from the expectation (empty when it matches)."""
    problems = []
    if result.model_name and not result.model_name.startswith(model):
        problems.append(f"model_name {result.model_name!r} does not start with {model!r}")
    for index, want in enumerate(expected):
        got = _pick_output(want, index, result.outputs)
        label = f"output {want.name or index!r}"
        if got is None:
            names = [o.get("name") for o in result.outputs]
            problems.append(f"{label} missing; outputs returned: {names}")
            continue
        problems.extend(f"{label}: {p}" for p in _tensor_mismatches(want, got))
    return problems


def _pick_output(want: V2Output, index: int, outputs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    if want.name is not None:
        return next((o for o in outputs if o.get("name") == want.name), None)
    return outputs[index] if index < len(outputs) else None


def _tensor_mismatches(want: V2Output, got: Mapping[str, Any]) -> list[str]:
    problems = []
    shape = got.get("shape")
    if list(want.shape) != shape:
        problems.append(f"shape {shape} != expected {list(want.shape)}")
    if want.datatype is not None and got.get("datatype") != want.datatype:
        problems.append(f"datatype {got.get('datatype')!r} != expected {want.datatype!r}")
    values = flatten(got.get("data", []))
    if not want.compare_values:
        expected_count = math.prod(want.shape)
        if len(values) != expected_count:
            problems.append(f"{len(values)} values != {expected_count} for shape {list(want.shape)}")
        return problems
    if len(values) != len(want.data):
        problems.append(f"{len(values)} values != expected {len(want.data)}: got {_clip(values)}")
        return problems
    bad = [i for i, (g, w) in enumerate(zip(values, want.data, strict=True)) if not _close(g, w, want.tolerance)]
    if bad:
        first = bad[0]
        problems.append(
            f"{len(bad)} value(s) outside tolerance {want.tolerance}; first at [{first}]: "
            f"got {values[first]!r}, expected {want.data[first]!r}; data {_clip(values)}"
        )
    return problems


def _close(got: Any, want: Any, tolerance: float) -> bool:
    numeric = (int, float)
    if (
        isinstance(got, numeric)
        and isinstance(want, numeric)
        and not isinstance(got, bool)
        and not isinstance(want, bool)
    ):
        return math.isclose(float(got), float(want), rel_tol=0.0, abs_tol=tolerance)
    return bool(got == want)


def _clip(values: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return f"[{shown}{', …' if len(values) > limit else ''}]"
