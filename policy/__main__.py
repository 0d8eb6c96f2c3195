# Entry point the engine runs for `pulumi preview --policy-pack policy`; the rules live in rules.py.
# PolicyPack serves the engine and never returns: tests import rules.py, never this file.
from rules import PACK_ENFORCEMENT, POLICIES, PolicyPack

PolicyPack(name="llm-ab-guardrails", policies=POLICIES, enforcement_level=PACK_ENFORCEMENT)
