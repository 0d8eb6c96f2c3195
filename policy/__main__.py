# Entry point the engine runs for `pulumi preview --policy-pack policy`, with only this directory on
# sys.path: the rules are the `policy` package, so its parent goes first. PolicyPack serves the engine
# and never returns: tests import policy.rules, never this file.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.rules import PACK_ENFORCEMENT, POLICIES, PolicyPack  # noqa: E402 - after the path is set

PolicyPack(name="llm-ab-guardrails", policies=POLICIES, enforcement_level=PACK_ENFORCEMENT)
