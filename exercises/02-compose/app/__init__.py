"""The iris service with a memory: POST /predict stores each prediction in Redis, GET /history
returns the latest ones, GET /health says whether the service (and its database) can serve.

Configuration comes from the environment (REDIS_URL, HISTORY_KEEP), with defaults that work on a
laptop running Redis locally; in Compose, the `environment:` of the api service sets them.
"""
from __future__ import annotations

import os

import redis
from flask import Flask, jsonify, request

from app import model
from app.history import History

DEFAULTS = {
    "REDIS_URL": "redis://localhost:6379/0",
    "HISTORY_KEEP": 1000,  # entries kept in Redis
    "MAX_ROWS": 1000,  # rows per request
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # bytes per request body (Flask answers 413 above it)
}


def create_app(config: dict | None = None) -> Flask:
    """Defaults, then the environment, then `config` (tests)."""
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update({key: type(value)(os.environ[key]) for key, value in DEFAULTS.items() if key in os.environ})
    app.config.update(config or {})
    history = History(app.config["REDIS_URL"], int(app.config["HISTORY_KEEP"]))

    @app.post("/predict")
    def predict():
        payload = request.get_json(silent=True)
        error = model.validation_error(payload)
        if error:
            return jsonify(error=error), 400
        if len(payload["data"]) > app.config["MAX_ROWS"]:
            return jsonify(error=f"at most {app.config['MAX_ROWS']} rows per request"), 413
        result = model.predict(payload["data"])
        history.add(payload["data"], result)
        return jsonify(result=result)

    @app.get("/history")
    def latest():
        count = request.args.get("limit", "10")
        if not count.isdigit() or not 1 <= int(count) <= 100:
            return jsonify(error="limit must be a whole number from 1 to 100"), 400
        return jsonify(history=history.latest(int(count)))

    @app.get("/health")
    def health():
        history.ping()
        return jsonify(status="ok", redis="ok")

    @app.errorhandler(redis.RedisError)
    def database_down(error):
        # 503, not 500: the request was fine, the database is not reachable (yet).
        app.logger.warning("redis unavailable at %s: %s", app.config["REDIS_URL"], error)
        return jsonify(error=f"the history database is unavailable: {type(error).__name__}"), 503

    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def http_error(error):
        return jsonify(error=error.description), error.code

    return app
