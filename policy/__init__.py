"""llm-ab-guardrails policy pack (a package so tests can ``import policy.rules``)."""
