"""The smoke gate's OpenAI-compatible client against a loopback server that speaks vLLM's protocol
(tests/vllm_server.py), and TGI's chat and stream routes (the case routes mean the same on both)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from smoke.cases import Expectation, TgiCase, load_case_file
from smoke.net import EndpointError, RetryPolicy
from smoke.openai import OpenAiClient, openai_sampling
from smoke.tgi import TgiClient
from tests.analysis.servers import start_tgi_stream
from tests.vllm_server import RunningVllm, start_vllm

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"
ROOT = "/mnt/datasets/model-weights/qwen2.5-0.5b-instruct/7ae557604adf67be50417f59c2c2f167def9a775"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def vllm() -> Iterator[Callable[..., RunningVllm]]:
    stops: list[Callable[[], None]] = []
    yield lambda **behaviour: start_vllm(QWEN, ROOT, stops, **behaviour)
    for stop in reversed(stops):
        stop()


def case(route: str = "generate", prompt: str = "The three primary colours are", **parameters) -> TgiCase:
    return TgiCase(name=f"c-{route}", prompt=prompt, parameters={"do_sample": False, "max_new_tokens": 32,
                                                                     **parameters},
                   expect=Expectation("non_empty"), max_latency_s=10, route=route, source="test")


def client(url: str) -> OpenAiClient:
    return OpenAiClient(url, httpx.Client(), 5.0)


def test_identity_comes_from_v1_models_served_name_and_root(vllm) -> None:
    server = vllm()
    c = client(server.url)
    c.health(RetryPolicy.brief())
    served = c.served_model(RetryPolicy.brief())
    assert (served.id, served.root, served.owned_by) == (QWEN, ROOT, "vllm")
    assert served.identity == ROOT and c.model == QWEN  # later requests name the served model


@pytest.mark.parametrize("route", ["generate", "compat", "chat", "stream"])
def test_every_case_route_returns_the_greedy_answer(vllm, route: str) -> None:
    server = vllm(answers={"The three primary colours are": "red, yellow and blue."})
    c = client(server.url)
    c.served_model(RetryPolicy.brief())
    generation = c.generate(case(route), RetryPolicy.brief())
    assert generation.text == "red, yellow and blue." and generation.route == route
    path, body = server.behaviour.requests[-1]
    assert path == ("/v1/chat/completions" if route == "chat" else "/v1/completions")
    assert body["model"] == QWEN and body["temperature"] == 0.0 and body["max_tokens"] == 32
    assert body.get("stream", False) is (route == "stream")
    assert ("messages" in body) is (route == "chat")


def test_tgi_parameters_are_translated_and_unknown_ones_named() -> None:
    assert openai_sampling({"do_sample": True, "temperature": 0.7, "top_k": 5, "max_new_tokens": 9, "seed": 3,
                            "stop": ["\n"], "details": True}) == {
        "temperature": 0.7, "top_k": 5, "max_tokens": 9, "seed": 3, "stop": ["\n"]}
    with pytest.raises(EndpointError, match="parameter 'watermark' has no OpenAI-compatible equivalent"):
        openai_sampling({"watermark": True})


def test_vllm_error_objects_are_reported_with_their_type_and_message(vllm) -> None:
    server = vllm(max_model_len=40)
    c = OpenAiClient(server.url, httpx.Client(), 5.0, model="someone/else")
    with pytest.raises(EndpointError, match=r"HTTP 404 NotFoundError \(404\): The model `someone/else` does not exist"):
        c.generate(case(), RetryPolicy.brief())
    c.model = QWEN
    with pytest.raises(EndpointError,
                       match=r"HTTP 400 BadRequestError \(400\): This model's maximum context length is 40"):
        c.generate(case(max_new_tokens=64), RetryPolicy.brief())


def test_an_error_chunk_inside_a_stream_fails_the_case(vllm) -> None:
    server = vllm(fail_stream_after=2)
    c = client(server.url)
    c.served_model(RetryPolicy.brief())
    with pytest.raises(EndpointError, match="the stream ended in an error: InternalServerError .*CUDA out of memory"):
        c.generate(case("stream"), RetryPolicy.brief())


def test_a_tgi_route_is_a_404_on_vllm(vllm) -> None:
    server = vllm()
    with pytest.raises(EndpointError, match=r"HTTP 404: \{\"detail\": \"Not Found\"\}"):
        TgiClient(server.url, httpx.Client(), 5.0).info(RetryPolicy.brief())


def test_tgi_stream_route_joins_generate_stream_events() -> None:
    stops: list[Callable[[], None]] = []
    try:
        server = start_tgi_stream("/mnt/x/flan/abc", stops, answers={"hello": "hi there friend"}, token_s=0.0)
        generation = TgiClient(server.url, httpx.Client(), 5.0).generate(case("stream", "hello"), RetryPolicy.brief())
        assert generation.text == "hi there friend"
    finally:
        for stop in stops:
            stop()


def test_the_dev_vllm_cases_use_routes_both_apis_have() -> None:
    for name in ("qwen2.5-0.5b-instruct.yaml", "qwen2.5-1.5b-instruct.yaml"):
        loaded = load_case_file(REPO / "smoke" / "cases" / "dev-vllm" / name)
        assert {c.route for c in loaded.cases} == {"chat", "generate", "stream"}
        assert loaded.model.startswith("Qwen/")


def test_the_smoke_cli_checks_a_vllm_variant_through_the_openai_api(vllm, capsys) -> None:
    from smoke.cli import main
    from tests.loopback import cli_runner

    server = vllm(answers={"What is the capital of France? Answer with the city name only.": "Paris"})
    code, out, err = cli_runner(main, capsys)(
        "--stable-url", server.url, "--stable-api", "openai", "--stable-model", QWEN,
        "--stable-revision", ROOT.rsplit("/", 1)[1], "--stable-weights", ROOT,
        "--cases", str(REPO / "smoke" / "cases" / "dev-vllm" / "qwen2.5-0.5b-instruct.yaml"), "--timeout", "30")
    assert code == 0, out + err
    paths = [p for p, _ in server.behaviour.requests]
    assert paths.count("/v1/chat/completions") == 1 and paths.count("/v1/completions") == 2


def test_the_gate_tells_the_smoke_job_each_variants_api() -> None:
    from stacks.gates import smoke_plan
    from stacks.settings import parse_settings
    from tests.golden.render import dev_mixed
    from tests.harness import raw_config

    argv = smoke_plan(parse_settings(raw_config(dev_mixed()), stack="dev-vllm")).to_argv()
    assert argv[argv.index("--canary-api") + 1] == "openai" and "--stable-api" not in argv


def test_the_split_check_samples_v1_models_when_a_variant_speaks_openai(vllm, capsys) -> None:
    from smoke.cli import main
    from tests.loopback import cli_runner

    server = vllm()
    code, out, err = cli_runner(main, capsys)(
        "--tgi-url", server.url, "--canary-percent", "100", "--canary-url", server.url, "--canary-api", "openai",
        "--canary-model", QWEN, "--canary-weights", ROOT, "--samples", "40", "--timeout", "30")
    assert code == 0, out + err
    assert "/info" not in [p for p, _ in server.behaviour.requests]
