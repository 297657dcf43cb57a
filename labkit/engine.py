"""The Docker engine as the tools see it: does it answer, wait until it does, which builder it has.

Standard library only, so that `make doctor` and `labkit/setup_host.sh` can use it before the
virtualenv exists. Every call has a timeout (macOS has no `timeout` command; Python has one).

    python3 -m labkit.engine answers          # exit 0 when an engine answers within 10 s
    python3 -m labkit.engine wait 60          # poll until it answers, at most 60 s
    python3 -m labkit.engine builder          # "buildkit" or "classic"
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

ANSWER_TIMEOUT = 10
# Set where the docker CLI has no BuildKit (no buildx plugin): an offline Debian docker.io engine.
CLASSIC_BUILDER_ENV = {"DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}


def docker(*args: str, timeout: float = ANSWER_TIMEOUT) -> subprocess.CompletedProcess | None:
    """Run the docker CLI; None when it is missing or does not return within `timeout` seconds."""
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None


def engine_answers(timeout: float = ANSWER_TIMEOUT) -> bool:
    result = docker("info", "--format", "{{.ServerVersion}}", timeout=timeout)
    return result is not None and result.returncode == 0 and result.stdout.strip() not in ("", "<no value>")


def wait_for_engine(seconds: float, poll: float = 1.0) -> bool:
    """Poll until the engine answers; False when `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        if engine_answers(timeout=max(1.0, min(ANSWER_TIMEOUT, deadline - time.monotonic()))):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def has_buildkit() -> bool:
    """The docker CLI builds with BuildKit when the buildx plugin is there (Docker Desktop, Engine >= 23)."""
    result = docker("buildx", "version")
    return result is not None and result.returncode == 0


def builds_with_buildkit() -> bool:
    """`docker build` here uses BuildKit: the CLI has it, and DOCKER_BUILDKIT does not turn it off."""
    return os.environ.get("DOCKER_BUILDKIT", "1") != "0" and has_buildkit()


def builder_env() -> dict[str, str]:
    """Environment for `docker build` / `docker compose build`: empty (the engine's default) unless there
    is no BuildKit, where the classic builder is asked for explicitly. A value the user set wins."""
    if has_buildkit():
        return {}
    return {key: os.environ.get(key, value) for key, value in CLASSIC_BUILDER_ENV.items()}


def join_single_node_swarm() -> bool:
    """Join a single-node swarm, advertised on loopback, when the engine is in none. True when this call
    joined it (so the caller leaves it again); RuntimeError when `docker swarm init` fails."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}")
    if state is None or state.returncode != 0 or state.stdout.strip() != "inactive":
        return False
    result = docker("swarm", "init", "--advertise-addr", "127.0.0.1", timeout=120)
    if result is None or result.returncode != 0:
        raise RuntimeError(f"docker swarm init failed: {result.stderr.strip() if result else 'no answer'}")
    return True


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "answers":
        return 0 if engine_answers() else 1
    if command == "wait" and len(argv) == 2:
        return 0 if wait_for_engine(float(argv[1])) else 1
    if command == "builder":
        print("buildkit" if has_buildkit() else "classic")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
