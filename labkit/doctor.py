"""`make doctor`: one line per thing the labs need, and for each problem the command that fixes it.

It catches what makes `make setup` fail (no Python >= 3.11 with venv, no engine, an engine too old or
not reachable by this user, no Compose v2, too little disk) and runs before the virtualenv exists:
standard library only. A line is `ok`, `FAIL` (fix it, then `make setup`), `todo` (`make setup` does
it) or `warn` (only some targets need it).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import sys
from pathlib import Path
from typing import NamedTuple

from labkit.engine import docker
from labkit.images import BASE_IMAGES, STANDIN_LABEL, image_labels

REPO = Path(__file__).resolve().parent.parent
PORTS = (8000, 5555)  # the capstone's gateway and Flower
MIN_PYTHON = (3, 11)
MIN_API = (1, 41)  # Engine 20.10: the oldest engine the course runs on (Debian 12's docker.io)
# The virtualenv (~0.7 GB with Jupyter and scikit-learn) and the images and build cache of the week (~3 GB).
MIN_FREE_GB = {"the repository's disk": 2, "Docker's disk": 5}


class Check(NamedTuple):
    status: str  # ok, FAIL, todo, warn
    what: str
    fix: str = ""


def on_linux_x86() -> bool:
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < MIN_PYTHON:
        return Check("FAIL", f"Python {version} is older than 3.11",
                     "install Python 3.11-3.13 (macOS: brew install python@3.13; Ubuntu/WSL: sudo apt install "
                     "python3 python3-venv), then make PYTHON=python3.13 setup")
    try:
        import ensurepip  # noqa: F401 - Debian and Ubuntu ship it in python3-venv
        import venv  # noqa: F401
    except ImportError:
        return Check("FAIL", f"Python {version} cannot make a virtualenv (no ensurepip)",
                     "sudo apt install python3-venv")
    return Check("ok", f"Python {version} ({sys.executable})")


def engine_failure(stderr: str) -> Check:
    """Why `docker version` could not reach the engine, and the fix for that reason."""
    text = stderr.lower()
    if "permission denied" in text:
        user = os.environ.get("USER", "$USER")
        return Check("FAIL", "the Docker engine runs, but this user may not use its socket (permission denied)",
                     f"sudo usermod -aG docker {user}, then log out and in again (or run: newgrp docker)")
    if sys.platform == "darwin" or "microsoft" in platform.release().lower():
        fix = "start Docker Desktop (on Windows: Settings > Resources > WSL integration on for this distro)"
    elif getattr(os, "geteuid", lambda: -1)() == 0 and Path("/etc/debian_version").exists():
        fix = "make setup   (starts dockerd)"
    else:
        fix = "sudo systemctl start docker   (or start Docker Desktop)"
    return Check("FAIL", "no Docker engine answers", fix)


def check_engine() -> tuple[Check, dict | None]:
    """The engine line, and `docker version`'s data when the engine answers."""
    if shutil.which("docker") is None:
        return Check("FAIL", "docker CLI not found",
                     "install Docker Desktop (macOS, Windows with WSL2) or Docker Engine (Linux); on Debian "
                     "as root, make setup installs docker.io"), None
    out = docker("version", "--format", "{{json .}}", timeout=20)
    if out is None:
        return Check("FAIL", "the Docker engine does not answer within 20 s",
                     "restart Docker Desktop / the docker service, then try again"), None
    data = json.loads(out.stdout or "{}") if out.stdout.strip().startswith("{") else {}
    server = data.get("Server") or {}
    if out.returncode != 0 or not server:
        return engine_failure(out.stderr), None
    api = tuple(int(part) for part in server.get("ApiVersion", "0.0").split(".")[:2])
    described = f"engine {server.get('Version', '?')} (API {server.get('ApiVersion', '?')}, {server.get('Os', '?')})"
    if api < MIN_API:
        return Check("FAIL", f"{described} is too old: the labs need Engine 20.10 (API 1.41) or newer",
                     "update Docker Desktop, or install a current Docker Engine"), None
    return Check("ok", described), data


def check_compose() -> Check:
    out = docker("compose", "version", "--short", timeout=15)
    if out is not None and out.returncode == 0:
        version = out.stdout.strip().lstrip("v")
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 2:
            return Check("ok", f"compose {version}")
    if on_linux_x86():
        return Check("todo", "'docker compose' (the v2 plugin) missing", "make setup installs it")
    return Check("FAIL", "'docker compose' (the v2 plugin) missing",
                 "update Docker Desktop (it includes Compose v2), or install Docker's docker-compose-plugin")


def free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 2**30


def check_disk(docker_root: str | None) -> list[Check]:
    places = {"the repository's disk": REPO}
    # Docker Desktop keeps its disk inside a VM: its path means nothing on the host, so it is skipped.
    if docker_root and Path(docker_root).exists():
        places["Docker's disk"] = Path(docker_root)
    checks = []
    for name, path in places.items():
        free, need = free_gb(path), MIN_FREE_GB[name]
        if free < need:
            checks.append(Check("FAIL", f"{name} ({path}) has {free:.1f} GB free; the labs need {need} GB",
                                "free disk space (docker builder prune removes old build cache)"))
        else:
            checks.append(Check("ok", f"{name}: {free:.0f} GB free"))
    return checks


def check_swarm() -> Check:
    out = docker("info", "--format", "{{json .Swarm}}")
    if out is None or out.returncode != 0:
        return Check("warn", "swarm state unknown")
    state = json.loads(out.stdout).get("LocalNodeState", "?")
    if state in ("inactive", "active"):
        return Check("ok", f"swarm capable (node state: {state}; the swarm lab joins a single-node swarm)")
    return Check("warn", f"swarm node state '{state}' (lab 03 needs a working swarm)", "docker swarm leave --force")


def check_images() -> list[Check]:
    checks = []
    for image in BASE_IMAGES:
        labels = image_labels(image.tag)
        if labels is None:
            checks.append(Check("todo", f"image {image.tag} missing", "make setup pulls (or builds) it"))
        elif STANDIN_LABEL in labels and labels[STANDIN_LABEL] != image.recipe_hash():
            checks.append(Check("todo", f"image {image.tag}: stand-in from an older recipe", "make setup rebuilds it"))
        else:
            kind = "offline stand-in" if STANDIN_LABEL in labels else "official"
            checks.append(Check("ok", f"image {image.tag} ({kind})"))
    return checks


def check_port(port: int) -> Check:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return Check("warn", f"port {port} on 127.0.0.1 is taken (make up needs it)",
                         f"make down, or stop what listens on port {port}")
    return Check("ok", f"port {port} free")


def all_checks() -> list[Check]:
    engine, version = check_engine()
    checks = [check_python(), engine]
    if version is not None:
        docker_root = docker("info", "--format", "{{.DockerRootDir}}")
        root = docker_root.stdout.strip() if docker_root is not None and docker_root.returncode == 0 else None
        checks += [check_compose(), *check_disk(root), check_swarm(), *check_images()]
    else:
        checks += check_disk(None)
    return checks + [check_port(port) for port in PORTS]


def run_doctor() -> int:
    checks = all_checks()
    for check in checks:
        print(f"{check.status:<4}  {check.what}" + (f"\n      fix: {check.fix}" if check.fix else ""))
    failed = sum(check.status == "FAIL" for check in checks)
    todo = sum(check.status == "todo" for check in checks)
    if failed:
        print(f"{failed} problem(s) that stop 'make setup': run the 'fix' commands above")
    else:
        print("all good" if not todo else "ready: 'make setup' does the rest")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_doctor())
