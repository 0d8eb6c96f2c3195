"""llm-ab: A/B-test two LLMs on Kubernetes. Thin entry point: settings -> build -> exports."""

import pulumi

from stacks.config_types import ConfigError
from stacks.llm_ab import build
from stacks.settings import load_settings

try:
    # Every config value is validated here, before any resource is registered.
    settings = load_settings()
except ConfigError as err:
    raise pulumi.RunError(f"invalid stack config: {err}") from None

for name, value in build(settings).items():
    pulumi.export(name, value)
