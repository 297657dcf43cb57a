"""The image's HEALTHCHECK (given): one image runs the API, a worker or the beat, so check whichever runs.

- API (gunicorn): GET /health on port 8000 answers 200.
- worker: it answers a Celery ping addressed to itself (celery@<hostname>) within 3 s.
- beat: its process is alive (it has no port and answers no ping).
"""
import socket
import sys
import urllib.request

command = open("/proc/1/cmdline", "rb").read().split(b"\0")

if b"worker" in command:
    import os

    from celery import Celery

    # Not `from tasks import app`: that imports the model (scikit-learn), seconds of CPU every check.
    app = Celery(broker=os.environ.get("BROKER_URL", "redis://localhost:6379/0"))
    replies = app.control.ping(destination=[f"celery@{socket.gethostname()}"], timeout=3)
    sys.exit(0 if replies else 1)
elif b"beat" in command:
    sys.exit(0)
else:
    urllib.request.urlopen("http://127.0.0.1:8000/health", timeout=2)
