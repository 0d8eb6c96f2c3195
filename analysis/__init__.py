"""A/B analysis of the llm-ab variants: streamed load, client and server figures, statistics, a verdict.

Run as ``python -m analysis --help``. Plain Python (no Pulumi import), flat like ``smoke/``
(whose case files and HTTP helpers it reuses), so the in-cluster analysis Job can ship both
packages and run it.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
