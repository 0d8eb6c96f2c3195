"""The staging tests' S3 server and fixtures: a real S3 server (moto's, with IAM auth on) per module.

The server runs in a child process on a free loopback port. Right after start the fixture creates
IAM users and then switches moto's request authentication on (POST /moto-api/reset-auth 0), so S3
checks signatures and policies like MinIO does: unknown keys get InvalidAccessKeyId, a wrong secret
SignatureDoesNotMatch, a user without a policy AccessDenied.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import types
import urllib.request

import boto3
import pytest
from botocore.config import Config

MANIFEST = ".llm-ab-manifest.json"
REGION = "us-east-1"

MOTO_CHILD = """
import sys, time
delay, port = float(sys.argv[1]), int(sys.argv[2])
time.sleep(delay)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # lives until the test closes our stdin
"""


def start_moto(delay: float = 0.0, port: int = 0) -> tuple[subprocess.Popen, int | None]:
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO_CHILD, str(delay), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if delay:
        return proc, None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"moto server did not start: {line!r}"
    return proc, int(line)


def stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_client(endpoint: str, key: str, secret: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


class S3Server:
    def __init__(self, endpoint: str, creds: dict[str, tuple[str, str]]):
        self.endpoint = endpoint
        self.creds = creds  # user -> (access key id, secret)
        self.s3 = s3_client(endpoint, *creds["stager"])
        self._buckets = itertools.count(1)

    def new_bucket(self) -> str:
        name = f"models-{next(self._buckets)}"
        self.s3.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", []))

    def manifest(self, bucket: str, prefix: str) -> dict:
        return json.loads(self.s3.get_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST}")["Body"].read())


@pytest.fixture(scope="module")
def server():
    proc, port = start_moto()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup"
        )
        creds = {}
        for user in ("stager", "nobody"):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            creds[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        iam.put_user_policy(
            UserName="stager",
            PolicyName="staging",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        )
        # From here on every request must be signed by a known key and allowed by its policy.
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        assert json.loads(urllib.request.urlopen(request, timeout=10).read())["status"] == "ok"
        yield S3Server(endpoint, creds)
    finally:
        stop(proc)


@pytest.fixture(scope="module", autouse=True)
def shared_botocore_data():
    """Parse botocore's JSON service models once, not once per boto3 session the tool makes (speed only)."""
    import boto3.session
    import botocore.session

    loader = botocore.session.Session().get_component("data_loader")
    real_session = boto3.session.Session

    def session(*args, botocore_session=None, **kwargs):
        if botocore_session is None:
            botocore_session = botocore.session.Session()
            botocore_session.register_component("data_loader", loader)
        made = real_session(*args, botocore_session=botocore_session, **kwargs)
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))  # boto3 appends its data path each time
        return made

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(boto3.session, "Session", session)
        yield


@pytest.fixture(scope="module")
def sm() -> types.SimpleNamespace:
    """The tool's modules, by the name each function lives under (patches go where the code looks)."""
    from staging import cli, common, files, hub, s3

    return types.SimpleNamespace(cli=cli, common=common, files=files, hub=hub, s3=s3)


@pytest.fixture(autouse=True)
def env(server, monkeypatch, tmp_path):
    """A clean, offline environment with the stager's credentials, for every test; a dict for subprocesses."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "STAGING_", "HF_")):
            monkeypatch.delenv(name)
    key, secret = server.creds["stager"]
    settings = {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_EC2_METADATA_DISABLED": "true",  # never probe the instance metadata address
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


@pytest.fixture
def bucket(server):
    return server.new_bucket()


class Recorder:
    """Records the S3 operations the tool's clients make (botocore before-call events)."""

    def __init__(self):
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, params, model, **_):
        self.calls.append((model.name, params.get("Key")))

    def writes(self) -> list[tuple[str, str | None]]:
        ops = {
            "PutObject",
            "CreateMultipartUpload",
            "UploadPart",
            "CompleteMultipartUpload",
            "DeleteObject",
            "CopyObject",
        }
        return [c for c in self.calls if c[0] in ops]


@pytest.fixture
def recorder(sm, monkeypatch):
    rec = Recorder()
    original = sm.s3.make_client

    def make_client(opts, **kwargs):
        client = original(opts, **kwargs)
        client.meta.events.register("before-parameter-build.s3", rec)
        return client

    monkeypatch.setattr(sm.s3, "make_client", make_client)
    return rec

