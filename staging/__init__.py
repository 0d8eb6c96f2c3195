"""Stage a pinned Hugging Face Hub model revision into an S3 bucket (MinIO) for llm-ab.

One Kubernetes Job per model revision runs this package (shipped flat by ConfigMap to
``/opt/staging/staging`` and run as ``python -m staging ...`` on a pinned python image with
``requirements.txt`` installed). It needs only the standard library, huggingface_hub (download)
and boto3 (upload). Modules: :mod:`.cli` (flags, ``main``), :mod:`.stage` (the steps below),
:mod:`.hub`, :mod:`.s3`, :mod:`.files` and :mod:`.common`.

What it does
------------
1. Checks the bucket (waiting up to --wait-seconds for the endpoint, since MinIO
   may still be starting).
2. Reads the manifest ``<prefix>/.llm-ab-manifest.json``. If it records the same
   repo id, revision (and resolved commit) and allow patterns, and every listed
   object is present with the listed size and sha256 metadata (HEAD only), it
   prints "already staged" and exits 0 without downloading anything (for a
   commit sha, without contacting the Hub at all).
3. Otherwise it lists the revision on the Hub, checks that the files to stage
   include safetensors weights (or *.bin with --allow-bin), downloads them
   (huggingface_hub.snapshot_download into a temporary directory; or takes the
   files from --source-dir), checks every file against the Hub's listing (size,
   LFS sha256, git blob id), deletes the old manifest, uploads every file whose
   object is not already identical, HEADs each uploaded object to verify its size
   and sha256 metadata, deletes objects under the prefix that the new snapshot no
   longer has, and writes the new manifest LAST: a manifest present means the
   prefix is complete and matches it.

Object layout
-------------
``s3://<bucket>/<prefix>/<path in the repo>`` for each staged file, so TGI's
MODEL_ID is the mounted directory (``/mnt/datasets/<dataset>/<prefix>``), plus the
manifest ``s3://<bucket>/<prefix>/.llm-ab-manifest.json``. Each object carries
its sha256 as user metadata (``x-amz-meta-sha256``). The prefix belongs to this
tool: other objects under it are deleted when a revision is staged. A prefix
that does not name the revision is rewritten in place when the revision changes
(restart TGI afterwards); llm-ab's ModelStaging passes ``<path>/<revision>``, so
each revision gets a fresh prefix and pods on the old one are not disturbed.

Manifest (JSON)
---------------
``{"format": "llm-ab-staging/1", "repo_id", "revision" (as requested),
"commit" (resolved Hub commit, null for --source-dir), "source" ("hub"|"local"),
"allow_patterns": [...] (as requested), "allow_bin": bool, "files": [{"path",
"size", "sha256"}, ...] (sorted by path), "total_bytes", "staged_at" (UTC,
ISO 8601)}``. Idempotency key: repo_id, revision, commit, allow_patterns,
allow_bin, plus every listed object's size and sha256 metadata.

Exit codes
----------
0 staged, or already staged; 2 bad usage; 3 S3 problem (credentials rejected,
access denied, bucket missing, endpoint unreachable, other S3 errors);
4 source problem (Hub download failed, no matching files, no safetensors,
snapshot differs from the Hub's listing); 5 upload verification failed.
Expected errors print one "stage_model: error: ..." line, no traceback.
"""
