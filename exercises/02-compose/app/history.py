"""The prediction history, kept in Redis so that any api container (restarted, recreated, scaled)
sees the same one: the api itself keeps no state."""
from __future__ import annotations

import json
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

KEY = "predictions"


class History:
    def __init__(self, url: str, keep: int) -> None:
        # Short time-outs and no retries (redis-py retries 10 times by default): a missing database
        # must give a quick 503, not a hung request.
        self.redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2,
                                          retry=Retry(NoBackoff(), 0))
        self.keep = keep

    def add(self, rows: list, result: list) -> None:
        entry = json.dumps({"data": rows, "result": result, "at": round(time.time(), 3)})
        # Newest first; LTRIM caps the list so it cannot grow without bound.
        with self.redis.pipeline() as pipe:
            pipe.lpush(KEY, entry).ltrim(KEY, 0, self.keep - 1).execute()

    def latest(self, count: int) -> list[dict]:
        return [json.loads(item) for item in self.redis.lrange(KEY, 0, count - 1)]

    def ping(self) -> bool:
        return bool(self.redis.ping())
