"""gunicorn settings, from the environment (given). `gunicorn --print-config` shows them all."""
import os

bind = "0.0.0.0:8000"
# One process per core (WEB_CONCURRENCY is gunicorn's usual knob; 2 = the cores of a small machine),
# each with a few threads (gthread). Without a cache /predict is pure CPU and threads gain nothing;
# with one, a sync worker would sit idle during every round trip to the cache server, while another
# thread can use the core meanwhile. Threads also keep a client's connection alive between requests.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# The workers' heartbeat files in RAM: a container's overlay disk can stall them.
worker_tmp_dir = "/dev/shm"
# No access log unless ACCESS_LOG names one ("-": stdout, so `docker logs`). Each line goes through
# Docker's log driver, about 0.3 ms of the machine's CPU: as much as a one-row request itself (make
# bench: ~2,800 requests/s without, ~2,000 with). In front of replicas the gateway logs every request.
accesslog = os.environ.get("ACCESS_LOG") or None
timeout = 30
graceful_timeout = 5
