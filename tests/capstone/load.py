"""Bounded background load through the capstone's gateway, counting what succeeded and what failed."""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

LECTURE = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}


class Load:
    """`threads` clients POSTing `path` until stopped, at most `max_requests` or `max_seconds`."""

    def __init__(self, url: str, threads: int = 4, max_requests: int = 20000, max_seconds: float = 120,
                 payload=LECTURE, ok=(200,)):
        self.url, self.threads, self.payload, self.ok = url, threads, payload, ok
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.statuses: Counter = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(threads)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status not in self.ok)

    def _client(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < deadline and self.sent < self.max_requests:
                try:
                    status = session.post(self.url, json=self.payload, timeout=10).status_code
                except requests.RequestException as error:
                    status = type(error).__name__
                with self._lock:
                    self.statuses[status] += 1

    def __enter__(self) -> "Load":
        self._futures = [self._pool.submit(self._client) for _ in range(self.threads)]
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for future in self._futures:
            future.result(timeout=30)
        self._pool.shutdown()

    def wait_for(self, sent: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < sent and time.monotonic() < deadline:
            time.sleep(0.05)
