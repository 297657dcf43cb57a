"""A cache in front of the model: Memcached or Redis, chosen by a URL.

    CACHE_URL=memcached://cache:11211     Memcached
    CACHE_URL=redis://cache:6379/0        Redis (database 0)
    CACHE_URL= (empty) or none            no cache

The cache is an optimisation, never a dependency: when its server is slow or down, `get` and `set`
raise CacheError quickly (short socket timeouts, no retries) and the service answers without it.
"""
from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

from pymemcache.client.base import PooledClient
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

KEY_PREFIX = "predict:"


class CacheError(Exception):
    """The cache server failed or did not answer in time; the caller goes on without the cache."""


def cache_key(rows: list[list[float]], model_version: str) -> str:
    """The key of one request: the same rows (however the JSON was spaced) and the same model
    version give the same key; anything else gives another. Keys are short and safe for Memcached
    (at most 250 characters, no spaces)."""
    # BEGIN SOLUTION
    # TODO: serialise the rows canonically with json.dumps (compact separators, sort_keys=True;
    # TODO: turn each number into float first, so 5 and 5.0 give the same key), together with
    # TODO: model_version: a new model must never be served the old model's answers.
    # TODO: return KEY_PREFIX + the sha256 hex digest of that text.
    canonical = json.dumps({"model": model_version, "rows": [[float(v) for v in row] for row in rows]},
                           separators=(",", ":"), sort_keys=True)
    return KEY_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()
    # END SOLUTION


class NullCache:
    """No cache configured: every lookup misses, nothing is stored."""

    enabled = False

    def get(self, key: str) -> list | None:
        return None

    def set(self, key: str, value: list) -> None:
        pass


class MemcachedCache:
    """Memcached through pymemcache; values are stored as JSON text for `ttl` seconds."""

    enabled = True

    def __init__(self, host: str, port: int, ttl: int, timeout: float) -> None:
        # BEGIN SOLUTION
        # TODO: create a pymemcache PooledClient for (host, port) with connect_timeout=timeout and
        # TODO: timeout=timeout (the defaults wait forever on a hung server), no_delay=True,
        # TODO: and keep ttl for set().
        self.ttl = ttl
        # PooledClient: a plain Client must not be shared between threads (e.g. gthread workers).
        self.client = PooledClient((host, port), connect_timeout=timeout, timeout=timeout,
                                   no_delay=True, max_pool_size=8)
        # END SOLUTION

    def get(self, key: str) -> list | None:
        # BEGIN SOLUTION
        # TODO: return the stored list (json.loads) or None when the key is absent;
        # TODO: turn every exception of the client (socket errors, timeouts, ...) into CacheError.
        try:
            value = self.client.get(key)
        except Exception as error:  # noqa: BLE001 - any failure means "no cache now"
            raise CacheError(f"memcached get failed: {error!r}") from error
        return None if value is None else json.loads(value)
        # END SOLUTION

    def set(self, key: str, value: list) -> None:
        # BEGIN SOLUTION
        # TODO: store json.dumps(value) under key with expire=self.ttl; errors become CacheError.
        try:
            self.client.set(key, json.dumps(value), expire=self.ttl)
        except Exception as error:  # noqa: BLE001
            raise CacheError(f"memcached set failed: {error!r}") from error
        # END SOLUTION


class RedisCache:
    """Redis through redis-py; values are stored as JSON text for `ttl` seconds."""

    enabled = True

    def __init__(self, url: str, ttl: int, timeout: float) -> None:
        # BEGIN SOLUTION
        # TODO: create redis.Redis.from_url(url, ...) with socket_timeout and socket_connect_timeout
        # TODO: set to timeout, and NO retries (retry=Retry(NoBackoff(), 0)): redis-py's default
        # TODO: retries with back-off, which turns a dead server into seconds of waiting per request.
        self.ttl = ttl
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 0), retry_on_timeout=False)
        # END SOLUTION

    def get(self, key: str) -> list | None:
        # BEGIN SOLUTION
        # TODO: return the stored list (json.loads) or None; redis errors become CacheError.
        try:
            value = self.client.get(key)
        except (redis.RedisError, OSError) as error:
            raise CacheError(f"redis get failed: {error!r}") from error
        return None if value is None else json.loads(value)
        # END SOLUTION

    def set(self, key: str, value: list) -> None:
        # BEGIN SOLUTION
        # TODO: store json.dumps(value) under key with an expiry of self.ttl seconds (ex=...);
        # TODO: redis errors become CacheError.
        try:
            self.client.set(key, json.dumps(value), ex=self.ttl)
        except (redis.RedisError, OSError) as error:
            raise CacheError(f"redis set failed: {error!r}") from error
        # END SOLUTION


def make_cache(url: str | None, ttl: int = 300, timeout: float = 0.1):
    """The cache CACHE_URL names: MemcachedCache, RedisCache, or NullCache for ''/none."""
    if not url or url.strip().lower() in ("none", "off"):
        return NullCache()
    parts = urlsplit(url)
    # BEGIN SOLUTION
    # TODO: memcached://host:port -> MemcachedCache(host, port or 11211, ttl, timeout);
    # TODO: redis://... (and rediss://) -> RedisCache(url, ttl, timeout);
    # TODO: any other scheme -> ValueError naming the URL (a typo must not silently disable the cache).
    if parts.scheme == "memcached":
        return MemcachedCache(parts.hostname or "localhost", parts.port or 11211, ttl, timeout)
    if parts.scheme in ("redis", "rediss"):
        return RedisCache(url, ttl, timeout)
    raise ValueError(f"CACHE_URL {url!r}: expected memcached://host:port, redis://host:port/db or empty")
    # END SOLUTION
