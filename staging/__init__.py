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
   object is present with the listed size and the S3 SHA-256 checksum recorded
   when it was verified (HEAD with checksum mode; S3 computed it on the bytes it
   stored), it prints "already staged" and exits 0 without downloading anything
   (for a commit sha, without contacting the Hub at all).
3. Otherwise it takes the prefix's lease (:mod:`.lease`: a conditional create of
   ``<prefix>/.llm-ab-lease.json``; another stager's live lease is waited for,
   up to --lease-wait-seconds, an expired one taken over), checks again (the other
   stager may have staged it), aborts incomplete multipart uploads under the
   prefix, lists the revision on the Hub, checks that the files to stage include
   safetensors weights (or *.bin with --allow-bin), downloads them
   (huggingface_hub.snapshot_download into a temporary directory; or takes the
   files from --source-dir, refusing symlinks that resolve outside it), checks
   every file against the Hub's listing (size, LFS sha256, git blob id), deletes
   the old manifest, uploads (with SHA-256 checksums) every file whose object does
   not already hold its bytes, verifies each uploaded object's checksum against
   the file's for the same part layout, deletes objects under the prefix that the
   new snapshot no longer has, renews the lease and writes the new manifest LAST:
   a manifest present means the prefix is complete and matches it. Then it
   releases the lease.

Object layout
-------------
``s3://<bucket>/<prefix>/<path in the repo>`` for each staged file, so TGI's
MODEL_ID is the mounted directory (``/mnt/datasets/<dataset>/<prefix>``), plus the
manifest ``s3://<bucket>/<prefix>/.llm-ab-manifest.json`` (and, while a stager
works, its lease ``.llm-ab-lease.json``). Each object has an S3 SHA-256 checksum
(``<base64>``, or ``<base64>-<parts>`` for a multipart upload: the SHA-256 of the
parts' SHA-256s) and carries its sha256 as user metadata (``x-amz-meta-sha256``,
for people). The prefix belongs to this tool: other objects under it are deleted
when a revision is staged. A prefix that does not name the revision is rewritten
in place when the revision changes (restart TGI afterwards); llm-ab's
ModelStaging passes ``<path>/<revision>``, so each revision gets a fresh prefix
and pods on the old one are not disturbed.

Manifest (JSON)
---------------
``{"format": "llm-ab-staging/2", "repo_id", "revision" (as requested),
"commit" (resolved Hub commit, null for --source-dir), "source" ("hub"|"local"),
"allow_patterns": [...] (as requested), "allow_bin": bool, "files": [{"path",
"size", "sha256", "s3_checksum"}, ...] (sorted by path), "total_bytes",
"staged_at" (UTC, ISO 8601)}``. Idempotency key: repo_id, revision, commit,
allow_patterns, allow_bin, plus every listed object's size and S3 checksum.
Format 1 manifests (no checksums) are restaged.

Exit codes
----------
0 staged, or already staged; 2 bad usage; 3 S3 unreachable or failing (after
--wait-seconds), 5xx; 4 source wrong (repo, revision or file not found, gated,
no matching files, no safetensors, snapshot differs from the Hub's listing, a
symlink leaving the snapshot); 5 upload verification failed; 6 S3 refuses us
(credentials rejected, access denied, bucket missing; the first two retried for
--auth-grace-seconds first); 7 the Hub unreachable or
failing (connection, timeout, 429, 5xx); 8 the prefix is busy (another stager's
lease past --lease-wait-seconds, or our lease taken over). 2, 4, 5 and 6 are
:data:`.common.FATAL_EXIT_CODES`: a retry won't heal them, so the Job fails at
once; the others are retried. Expected errors print one "stage_model: error: ..."
line, no traceback.
"""
