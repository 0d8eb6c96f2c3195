"""scripts/smoke's reading of a deployed stack's outputs (stacks/smoke_outside.py): each variant's identity and
API flags as the in-cluster smoke Job gets them, and a run of the smoke CLI with them against loopback servers
standing in for the port-forwarded Services (the engine-migration pair: TGI stable, vLLM canary)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable

from stacks.smoke_outside import assignments, main
from tests.golden.render import dev_mixed
from tests.harness import ROOT
from tests.loopback import cli_runner
from tests.smoke.servers import start_tgi
from tests.vllm_server import start_vllm


def deployed_outputs(run_main, resolve) -> dict:
    """The stack outputs of dev-mixed as `pulumi stack output --json` prints them."""
    return json.loads(json.dumps(resolve(run_main(dev_mixed()))))


def test_each_variant_gets_its_identity_and_its_engines_api(run_main, resolve) -> None:
    found = assignments(deployed_outputs(run_main, resolve))
    stable, canary = shlex.split(found["STABLE_IDENTITY"]), shlex.split(found["CANARY_IDENTITY"])
    assert stable[stable.index("--stable-api") + 1] == "tgi"
    assert canary[canary.index("--canary-api") + 1] == "openai"
    assert canary[canary.index("--canary-model") + 1] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert canary[canary.index("--canary-weights") + 1].endswith("/7ae557604adf67be50417f59c2c2f167def9a775")
    assert (found["NS"], found["STABLE_REPLICAS"], found["V2_MODEL"]) == ("llm-ab-dev-vllm", "1", "")
    assert found["CASES"] == "smoke/cases/dev-vllm/qwen2.5-0.5b-instruct.yaml"


def test_the_smoke_cli_passes_with_those_flags_on_a_tgi_and_a_vllm_variant(run_main, resolve, capsys) -> None:
    from smoke.cli import main as smoke_main

    found = assignments(deployed_outputs(run_main, resolve))
    canary_flags = shlex.split(found["CANARY_IDENTITY"])
    weights = canary_flags[canary_flags.index("--canary-weights") + 1]
    answers = {"What is the capital of France? Answer with the city name only.": "Paris"}
    stops: list[Callable[[], None]] = []
    try:
        stable = start_tgi(weights, stops, answers=answers)  # TGI's /info names the path it was given
        canary = start_vllm("Qwen/Qwen2.5-0.5B-Instruct", weights, stops, answers=answers)
        argv = ["--stable-url", stable.url, *shlex.split(found["STABLE_IDENTITY"]),
                "--canary-url", canary.url, *canary_flags,
                *[arg for case in found["CASES"].split() for arg in ("--cases", str(ROOT / case))],
                "--timeout", "30"]
        code, out, err = cli_runner(smoke_main, capsys)(*argv)
    finally:
        for stop in reversed(stops):
            stop()
    assert code == 0, out + err
    assert [path for path, _ in canary.behaviour.requests].count("/v1/chat/completions") == 1
    assert ("GET", "/info") in stable.behaviour.log


def test_the_module_prints_shell_assignments(run_main, resolve, capsys) -> None:
    assert main([json.dumps(deployed_outputs(run_main, resolve))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "NS=llm-ab-dev-vllm"
    assert any(line.startswith("CANARY_IDENTITY='--canary-model Qwen/Qwen2.5-0.5B-Instruct") for line in lines)
    assert main([]) == 2
