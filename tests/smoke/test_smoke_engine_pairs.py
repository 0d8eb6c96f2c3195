"""The smoke CLI on the pairs vLLM brings: two vLLM variants, and one model moving from TGI to vLLM, each
variant on its own API, the split sampled through one traffic proxy by ``GET /v1/models``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.smoke.cli_args import checks_of, identity
from tests.smoke.servers import REPO_ROOT, RunningServer, SplitProxy
from tests.vllm_server import RunningVllm, start_vllm

RunCli = Callable[..., tuple[int, str, str]]
CASES = REPO_ROOT / "smoke" / "cases" / "dev-vllm"
SMALL, LARGE = "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"
SMALL_ROOT = "/mnt/datasets/model-weights/qwen2.5-0.5b-instruct/7ae557604adf67be50417f59c2c2f167def9a775"
LARGE_ROOT = "/mnt/datasets/model-weights/qwen2.5-1.5b-instruct/989aa7980e4cf806f80c7fef2b1adb7bc71aa306"
CAPITAL = "What is the capital of France? Answer with the city name only."
ANSWERS = {CAPITAL: "Paris", "The three primary colours are": "red, yellow and blue."}


@pytest.fixture
def vllm() -> Iterator[Callable[..., RunningVllm]]:
    stops: list[Callable[[], None]] = []
    yield lambda name, root: start_vllm(name, root, stops, answers=dict(ANSWERS))
    for stop in reversed(stops):
        stop()


def posts(server: RunningVllm) -> list[str]:
    return [path for path, _ in server.behaviour.requests]


def run_pair(run_cli: RunCli, stable: RunningServer | RunningVllm, canary: RunningVllm, proxy: SplitProxy, *,
             stable_api: str, stable_model: tuple[str, str], canary_model: tuple[str, str], cases: list[Path],
             percent: int = 50) -> tuple[int, dict, dict]:
    code, out, err = run_cli(
        "--stable-url", stable.url, "--canary-url", canary.url, "--tgi-url", proxy.url,
        "--stable-api", stable_api, "--canary-api", "openai",
        *identity("stable", *stable_model), *identity("canary", *canary_model),
        *[arg for case_file in cases for arg in ("--cases", str(case_file))],
        "--canary-percent", str(percent), "--samples", "400", "--timeout", "60", "--json")
    assert out, err
    return code, json.loads(out), checks_of(out)


def test_two_vllm_variants_are_checked_on_the_openai_api_and_split_by_v1_models(
        run_cli: RunCli, vllm, split_proxy: Callable[..., SplitProxy]) -> None:
    stable, canary = vllm(SMALL, SMALL_ROOT), vllm(LARGE, LARGE_ROOT)
    proxy = split_proxy(stable, canary, share=0.5, seed=11)
    code, report, checks = run_pair(
        run_cli, stable, canary, proxy, stable_api="openai", stable_model=(SMALL, SMALL_ROOT),
        canary_model=(LARGE, LARGE_ROOT),
        cases=[CASES / "qwen2.5-0.5b-instruct.yaml", CASES / "qwen2.5-1.5b-instruct.yaml"])
    assert code == 0, {k: c["detail"] for k, c in checks.items() if c["status"] != "pass"}
    assert checks[("stable", "model")]["detail"].startswith(f"serves '{SMALL_ROOT} (served as {SMALL}, owned by vllm)'")
    for server in (stable, canary):  # each variant ran its own three cases: chat, completion, stream
        assert sorted(posts(server)) == ["/v1/chat/completions", "/v1/completions", "/v1/completions"]
    split = report["split"]
    assert split["verdict"] == "consistent" and split["samples"] == len(proxy.choices) - 1
    assert split["canary"] == proxy.choices[1:].count("canary")  # what the proxy did is what was counted


def test_two_vllm_variants_with_a_wrong_split_fail_it(run_cli: RunCli, vllm,
                                                       split_proxy: Callable[..., SplitProxy]) -> None:
    stable, canary = vllm(SMALL, SMALL_ROOT), vllm(LARGE, LARGE_ROOT)
    proxy = split_proxy(stable, canary, share=0.9, seed=5)
    code, report, checks = run_pair(
        run_cli, stable, canary, proxy, stable_api="openai", stable_model=(SMALL, SMALL_ROOT),
        canary_model=(LARGE, LARGE_ROOT), cases=[], percent=10)
    assert code == 1
    assert report["split"]["verdict"] == "off" and report["split"]["observed"] > 0.5
    assert "differs from the expected one" in checks[("traffic", "split")]["detail"]


def test_one_model_on_tgi_and_on_vllm_is_told_apart_by_how_v1_models_names_it(
        run_cli: RunCli, tgi_server, vllm, split_proxy: Callable[..., SplitProxy]) -> None:
    """The engine migration: the same weights behind TGI (stable, native API) and vLLM (canary). Their /info
    and /v1/models name the same path, but TGI's /v1/models entry has no root and its own id as owner while
    vLLM serves the repo id, owned by vllm: the split is measured, not skipped as indistinguishable."""
    stable = tgi_server(SMALL_ROOT, answers=dict(ANSWERS))
    canary = vllm(SMALL, SMALL_ROOT)
    proxy = split_proxy(stable, canary, share=0.5, seed=3)
    code, report, checks = run_pair(
        run_cli, stable, canary, proxy, stable_api="tgi", stable_model=(SMALL, SMALL_ROOT),
        canary_model=(SMALL, SMALL_ROOT), cases=[CASES / "qwen2.5-0.5b-instruct.yaml"])
    assert code == 0, {k: c["detail"] for k, c in checks.items() if c["status"] != "pass"}
    native = [path for method, path in stable.behaviour.log if method == "POST"]
    assert sorted(native) == ["/generate", "/generate_stream", "/v1/chat/completions"]
    assert ("GET", "/info") in stable.behaviour.log and ("GET", "/v1/models") in stable.behaviour.log
    assert sorted(posts(canary)) == ["/v1/chat/completions", "/v1/completions", "/v1/completions"]
    split = report["split"]
    assert split["verdict"] == "consistent" and split["samples"] > 0
    assert split["canary"] == proxy.choices[1:].count("canary")
    assert set(split["model_ids"]) == {SMALL_ROOT, f"{SMALL_ROOT} (served as {SMALL}, owned by vllm)"}


def test_one_model_on_two_vllm_variants_cannot_be_split_checked(
        run_cli: RunCli, vllm, split_proxy: Callable[..., SplitProxy]) -> None:
    stable, canary = vllm(SMALL, SMALL_ROOT), vllm(SMALL, SMALL_ROOT)
    proxy = split_proxy(stable, canary, share=0.5)
    code, _, checks = run_pair(run_cli, stable, canary, proxy, stable_api="openai",
                               stable_model=(SMALL, SMALL_ROOT), canary_model=(SMALL, SMALL_ROOT), cases=[])
    assert code == 0
    split = checks[("traffic", "split")]
    assert split["status"] == "skip" and "can't tell them apart" in split["detail"]
