"""gunicorn settings, from the environment (given). `gunicorn --print-config` shows them all."""
import os

bind = "0.0.0.0:8000"
# Sync workers: /predict is CPU-bound and short, one request per process at a time is the fastest
# way through it. WEB_CONCURRENCY is gunicorn's usual knob; 2 = the cores of a small machine.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# The workers' heartbeat files in RAM: a container's overlay disk can stall them.
worker_tmp_dir = "/dev/shm"
accesslog = os.environ.get("ACCESS_LOG", "-") or None
timeout = 30
graceful_timeout = 5
