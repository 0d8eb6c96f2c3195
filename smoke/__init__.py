"""Post-deploy smoke tests for the llm-ab stack: TGI variants, the traffic split and ModelMesh V2.

Run as ``python -m smoke --help``. The package is flat (no subpackages) and imports no
Pulumi module, so it can be shipped as a ConfigMap and run by the in-cluster smoke Job.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
