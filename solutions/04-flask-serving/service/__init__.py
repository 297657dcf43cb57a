"""The iris prediction service: `create_app()` in app.py, the cache in cache.py, the model in model.py."""
