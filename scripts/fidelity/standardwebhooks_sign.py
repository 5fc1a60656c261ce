#!/usr/bin/env python3
"""Signs webhook bodies with the official Standard Webhooks library (PyPI standardwebhooks 1.1.0),
and checks signatures crm-sync made with the same library's verifier, so a test can prove both
directions speak the standard.

Usage: standardwebhooks_sign.py --secret whsec_... --input FILE
FILE is a JSON list of {"id", "timestamp" (unix seconds), "body", optional "signature" to verify}.
Prints one JSON object: {"signatures": [...], "verified": [true|false|null, ...]}.
"""
import argparse
import json
import sys
from datetime import datetime, timezone

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True)
    parser.add_argument("--input", required=True)
    args = parser.parse_args()
    with open(args.input, encoding="utf-8") as handle:
        items = json.load(handle)
    hook = Webhook(args.secret)
    signatures, verified = [], []
    for item in items:
        when = datetime.fromtimestamp(int(item["timestamp"]), tz=timezone.utc)
        signatures.append(hook.sign(item["id"], when, item["body"]))
        if "signature" in item:
            headers = {"webhook-id": item["id"], "webhook-timestamp": str(item["timestamp"]),
                       "webhook-signature": item["signature"]}
            try:
                hook.verify(item["body"], headers)
                verified.append(True)
            except (WebhookVerificationError, ValueError):
                verified.append(False)
        else:
            verified.append(None)
    print(json.dumps({"signatures": signatures, "verified": verified}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
