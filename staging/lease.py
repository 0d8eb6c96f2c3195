"""One stager at a time writes a prefix: a lease object taken with a conditional write.

``<prefix>/.llm-ab-lease.json`` is created with ``If-None-Match: *`` (S3 and MinIO refuse the write
when the object exists: 412), so of two stagers only one gets it. The holder renews it in the
background every third of ``--lease-seconds`` with ``If-Match: <its ETag>``; a lease past its
``expires_at`` (its holder died) is taken over the same way, so two stagers can't both take over
one stale lease. The holder checks it still holds the lease before each upload and renews it right
before the manifest is written, the moment a stager "wins"; it deletes the lease when done. A
second stager waits (up to ``--lease-wait-seconds``) and then re-checks the prefix, which the first
one has usually staged by then.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .common import EXIT_BUSY, Options, StageError, log

PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
"""What S3 answers a conditional write that lost (409: another conditional write is in flight)."""


def _code(e: Exception) -> str:
    response = getattr(e, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_owner() -> str:
    """Who we are, for the other stager's message: the host (the pod's name), the pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """A held lease on ``opts.prefix`` (see the module): :meth:`check`, :meth:`renew`, :meth:`release`."""

    def __init__(self, client: Any, opts: Options, owner: str, etag: str, clock: Callable[[], float]):
        self.client, self.opts, self.owner, self.etag, self.clock = client, opts, owner, etag, clock
        self.lost: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="lease-renewal", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.opts.lease_seconds / 3):
            try:
                self.renew()
            except StageError:
                return
            except Exception as e:  # noqa: BLE001 - a failed renewal is retried; expiry is the limit
                log(f"warning: renewing the lease on {self.opts.prefix}/ failed ({type(e).__name__}); retrying")

    def renew(self) -> None:
        """Extend the lease (conditional on our ETag); StageError(EXIT_BUSY) if another stager took it."""
        from botocore.exceptions import ClientError

        with self._lock:
            if self.lost:
                raise StageError(EXIT_BUSY, self.lost)
            try:
                self.etag = _put(self.client, self.opts, self.owner, self.clock(), if_match=self.etag)
            except ClientError as e:
                if _code(e) not in PRECONDITION_CODES:
                    raise
                holder = (read(self.client, self.opts) or ({}, ""))[0].get("owner", "another stager")
                self.lost = (f"lost the lease on s3://{self.opts.bucket}/{self.opts.prefix}/ to {holder} (it took over "
                             "after our lease expired): stopping without writing the manifest")
                raise StageError(EXIT_BUSY, self.lost) from None

    def check(self) -> None:
        """Raise StageError(EXIT_BUSY) when the renewal found the lease taken over."""
        if self.lost:
            raise StageError(EXIT_BUSY, self.lost)

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours."""
        from botocore.exceptions import ClientError

        self._stop.set()
        self._thread.join(timeout=30)
        if self.lost:
            return
        try:
            self.client.delete_object(Bucket=self.opts.bucket, Key=self.opts.lease_key, IfMatch=self.etag)
        except ClientError as e:
            if _code(e) not in PRECONDITION_CODES:
                raise


def _put(client: Any, opts: Options, owner: str, now: float, *, if_match: str | None = None) -> str:
    body = json.dumps({"owner": owner, "acquired_at": _iso(now), "expires_at": now + opts.lease_seconds,
                       "expires": _iso(now + opts.lease_seconds)}).encode()
    condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
    return client.put_object(Bucket=opts.bucket, Key=opts.lease_key, Body=body, ContentType="application/json",
                             ChecksumAlgorithm="SHA256", **condition)["ETag"]


def read(client: Any, opts: Options) -> tuple[dict, str] | None:
    """(the lease's body, its ETag), or None when there is none."""
    from botocore.exceptions import ClientError

    try:
        got = client.get_object(Bucket=opts.bucket, Key=opts.lease_key)
    except ClientError as e:
        if _code(e) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    try:
        body = json.loads(got["Body"].read())
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        body = {}  # unreadable: treated as expired
    return body, got["ETag"]


def acquire(client: Any, opts: Options, *, owner: str | None = None, clock: Callable[[], float] = time.time,
            sleep: Callable[[float], None] = time.sleep) -> Lease:
    """Take the prefix's lease: create it, or take over an expired one, or wait for a live one to go
    (StageError(EXIT_BUSY) after ``opts.lease_wait_seconds``)."""
    from botocore.exceptions import ClientError

    owner = owner or new_owner()
    deadline = clock() + opts.lease_wait_seconds
    told: str | None = None
    while True:
        now = clock()
        try:
            return Lease(client, opts, owner, _put(client, opts, owner, now), clock)
        except ClientError as e:
            if _code(e) not in PRECONDITION_CODES:
                raise
        current = read(client, opts)
        if current is None:
            continue  # released meanwhile
        body, etag = current
        holder = str(body.get("owner") or "an unknown stager")
        expires = float(body.get("expires_at") or 0)
        if expires <= now:
            try:
                lease = Lease(client, opts, owner, _put(client, opts, owner, now, if_match=etag), clock)
            except ClientError as e:
                if _code(e) not in PRECONDITION_CODES:
                    raise
                continue  # someone else took it over first
            log(f"took over the lease on {opts.prefix}/ from {holder}, expired at {_iso(expires)}")
            return lease
        if now >= deadline:
            raise StageError(
                EXIT_BUSY,
                f"s3://{opts.bucket}/{opts.prefix}/ is being staged by {holder} (lease until {_iso(expires)}); "
                f"waited {opts.lease_wait_seconds:g}s: retry later",
            )
        if told != holder:
            log(f"s3://{opts.bucket}/{opts.prefix}/ is being staged by {holder}; waiting for it to finish")
            told = holder
        sleep(max(0.05, min(1.0, deadline - now, expires - now)))
