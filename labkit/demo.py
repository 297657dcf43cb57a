"""`make up`'s last step: the lecture's own client call against the running service."""
from __future__ import annotations

import os
import sys

import requests

LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}


def main() -> int:
    base = f"http://127.0.0.1:{os.environ.get('API_PORT', '8000')}"
    response = requests.post(f"{base}/predict", json=LECTURE_REQUEST, timeout=10)
    print(f"POST {base}/predict {LECTURE_REQUEST}")
    print(f"  -> HTTP {response.status_code} {response.json()}")
    if response.json().get("result") != [0, 2]:
        print("expected {'result': [0, 2]}", file=sys.stderr)
        return 1
    print(f"\nThe service is up:\n  API   {base}/predict   (POST JSON)\n  health {base}/health\nStop it with: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
