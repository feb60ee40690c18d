"""The SigV4 signature botocore (AWS's Python SDK core) computes for a request the sink sent.

Reads JSON on stdin: method, url, headers ([[name, value], ...] as received), body (text),
key_id, secret, token, region, service. Signs exactly the headers the request's
Authorization header names, at its X-Amz-Date, and prints {"signature", "canonical_request"}.
"""
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

req = json.load(sys.stdin)
headers = {name.lower(): value for name, value in req["headers"]}
authorization = headers["authorization"]
fields = dict(
    part.strip().split("=", 1) for part in authorization.split(" ", 1)[1].split(",")
)
signed = fields["SignedHeaders"].split(";")
request = AWSRequest(
    method=req["method"],
    url=req["url"],
    data=req["body"].encode(),
    headers={name: headers[name] for name in signed},
)
request.context["timestamp"] = headers["x-amz-date"]
signer = SigV4Auth(
    Credentials(req["key_id"], req["secret"], req["token"] or None),
    req["service"],
    req["region"],
)
canonical = signer.canonical_request(request)
string_to_sign = signer.string_to_sign(request, canonical)
print(json.dumps({
    "signature": signer.signature(string_to_sign, request),
    "canonical_request": canonical,
}))
