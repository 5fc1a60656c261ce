"""POSTs a body of the given size with Python's urllib, which sends the whole body before it
reads the answer (as many webhook senders do), and prints what came back as one JSON line.

Usage: oversized_post.py URL BYTES
"""
import json
import sys
import urllib.error
import urllib.request


def main() -> None:
    url, size = sys.argv[1], int(sys.argv[2])
    body = b'{"pad": "' + b"x" * max(0, size - 11) + b'"}'
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            print(json.dumps({"status": response.status, "body": response.read().decode("utf-8", "replace")}))
    except urllib.error.HTTPError as error:
        print(json.dumps({"status": error.code, "body": error.read().decode("utf-8", "replace"),
                          "connection": error.headers.get("Connection")}))
    except (ConnectionError, urllib.error.URLError, OSError) as error:
        print(json.dumps({"status": None, "error": type(error).__name__ + ": " + str(error)}))


if __name__ == "__main__":
    main()
