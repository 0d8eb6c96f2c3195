"""Model staging tool for llm-ab.

``stage_model.py`` is a single self-contained script (stdlib + huggingface_hub + boto3, pinned in
``requirements.txt``): components/staging.py ships both files to the staging Job by ConfigMap and
runs ``python /opt/staging/stage_model.py ...``. Run ``python staging/stage_model.py --help`` for the
flags, exit codes and object layout.
"""
