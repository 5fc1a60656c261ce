#!/usr/bin/env python3
"""Signs and checks HubSpot webhook requests with the official client's signature helper
(hubspot-api-client 12.0.0, hubspot.utils.signature.Signature, version v3).

Usage: hubspot_signature.py --secret CLIENT_SECRET --input FILE
FILE is a JSON list of {"method", "uri", "body", "timestamp" (epoch ms, as text), optional
"signature" to check with Signature.is_valid}.
Prints one JSON object: {"signatures": [...], "valid": [true|false|null, ...]}.
"""
import argparse
import json
import sys

from hubspot.utils.signature import Signature
from hubspot.exceptions import InvalidSignatureTimestampError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True)
    parser.add_argument("--input", required=True)
    args = parser.parse_args()
    with open(args.input, encoding="utf-8") as handle:
        items = json.load(handle)
    signatures, valid = [], []
    for item in items:
        signatures.append(Signature.get_signature(
            client_secret=args.secret, request_body=item["body"], signature_version="v3",
            http_uri=item["uri"], http_method=item["method"], timestamp=item["timestamp"]))
        if "signature" in item:
            try:
                valid.append(Signature.is_valid(
                    signature=item["signature"], client_secret=args.secret, request_body=item["body"],
                    http_uri=item["uri"], http_method=item["method"], signature_version="v3",
                    timestamp=item["timestamp"]))
            except InvalidSignatureTimestampError:
                valid.append(False)
        else:
            valid.append(None)
    print(json.dumps({"signatures": signatures, "valid": valid}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
