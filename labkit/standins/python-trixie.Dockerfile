# Debian 13 "trixie": Python 3.13 with venv, make and git, and a current docker CLI (26, with buildx and
# compose) for the course's tooling. `labkit compat` runs the Python 3.13 and current-engine rows in it.
FROM debian:trixie-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv make git ca-certificates docker-cli docker-buildx docker-compose \
    && rm -rf /var/lib/apt/lists/*
