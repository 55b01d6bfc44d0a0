"""An S3 endpoint for the lake tests (test_delta_s3, test_lance_s3): moto in
server mode, a subprocess on a free port, with IAM authentication on, so
wrong credentials are refused as by S3.  No mock inside the test process:
the runners reach it over HTTP with the AWS_* variables of their environment.

Fixtures (import them into the test module): ``s3_server`` (module scope:
the AWS_* settings of an IAM user allowed everything) and ``bucket`` (a new
bucket; the runners the test starts get the credentials in their environment).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from typing import Iterator

import boto3
import pytest

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    """moto in server mode; the AWS_* settings of an IAM user allowed everything."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # The first 3 requests (creating the user, its policy and key) need no credentials.
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "moto did not start"
                time.sleep(0.1)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap")
        iam.create_user(UserName="jl")
        iam.put_user_policy(UserName="jl", PolicyName="all", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="jl")["AccessKey"]
        yield {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
               "AWS_REGION": REGION, "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def bucket(s3_server, monkeypatch) -> str:
    """A new bucket; the runners started by the test get the credentials in their environment."""
    name = f"jl-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"], region_name=REGION,
                 aws_access_key_id=s3_server["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=s3_server["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=name)
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    return name
