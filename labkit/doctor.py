"""`labkit doctor`: one line per thing the labs need, and for each failure the command that fixes it."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess

from labkit.images import BASE_IMAGES, STANDIN_LABEL, image_labels

PORTS = (8000, 5555)  # the capstone's gateway and Flower


def sh(*cmd: str, timeout: float = 15) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_engine() -> tuple[bool, str, str]:
    if shutil.which("docker") is None:
        return False, "docker CLI not found", "install Docker Desktop, or run 'make setup' (Debian, as root)"
    out = sh("docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})")
    if out is None or out.returncode != 0:
        return False, "no Docker engine answers", "start Docker Desktop, or run 'make setup' (starts dockerd)"
    return True, f"engine {out.stdout.strip()}", ""


def check_compose() -> tuple[bool, str, str]:
    out = sh("docker", "compose", "version", "--short")
    if out is None or out.returncode != 0:
        return False, "'docker compose' (v2 plugin) missing", "make setup   (installs the Compose v2 plugin)"
    return True, f"compose {out.stdout.strip()}", ""


def check_swarm() -> tuple[bool, str, str]:
    out = sh("docker", "info", "--format", "{{json .Swarm}}")
    if out is None or out.returncode != 0:
        return False, "swarm state unknown (no engine)", "start the engine first"
    state = json.loads(out.stdout).get("LocalNodeState", "?")
    if state in ("inactive", "active"):
        return True, f"swarm capable (node state: {state}; the swarm tests init and leave on their own)", ""
    return False, f"swarm node state '{state}'", "docker swarm leave --force"


def check_images() -> list[tuple[bool, str, str]]:
    lines = []
    for image in BASE_IMAGES:
        labels = image_labels(image.tag)
        if labels is None:
            lines.append((False, f"image {image.tag} missing", "labkit images"))
        elif STANDIN_LABEL in labels and labels[STANDIN_LABEL] != image.recipe_hash():
            lines.append((False, f"image {image.tag}: stand-in from an older recipe", "labkit images"))
        else:
            kind = "offline stand-in" if STANDIN_LABEL in labels else "official"
            lines.append((True, f"image {image.tag} ({kind})", ""))
    return lines


def check_port(port: int) -> tuple[bool, str, str]:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False, f"port {port} on 127.0.0.1 is taken", f"make down, or free port {port} (ss -ltnp 'sport = :{port}')"
    return True, f"port {port} free", ""


def run_doctor() -> int:
    engine = check_engine()
    checks = [engine, check_compose()]
    if engine[0]:
        checks += [check_swarm(), *check_images()]
    checks += [check_port(port) for port in PORTS]
    for ok, what, fix in checks:
        print(f"{'ok  ' if ok else 'FAIL'}  {what}" + (f"\n      fix: {fix}" if not ok else ""))
    failed = sum(not ok for ok, _, _ in checks)
    print("all good" if not failed else f"{failed} problem(s): run the 'fix' commands above")
    return 1 if failed else 0
