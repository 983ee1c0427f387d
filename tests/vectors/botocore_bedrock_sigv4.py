"""Prints botocore's SigV4 signature of a Bedrock ConverseStream request at a fixed time: the
oracle for `shared/auth/src/signer.rs`'s Bedrock test (an inference-profile id with `:`, whose
`%3A` is encoded again in the canonical request). Run it with any Python that has botocore
(e.g. the Lambda tools venv: ~/.cache/gw-lambda-venv/bin/python tests/vectors/botocore_bedrock_sigv4.py)."""
import datetime
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example")
url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"
body = b'{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":100}}'
req = AWSRequest(method="POST", url=url, data=body,
                 headers={"content-type": "application/json", "accept": "application/vnd.amazon.eventstream"})
with mock.patch("botocore.auth.get_current_datetime", return_value=datetime.datetime(2026, 12, 2, 10, 0, 0)):
    SigV4Auth(creds, "bedrock", "us-east-1").add_auth(req)
print(req.headers["Authorization"])
