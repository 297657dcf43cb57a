"""Observe what a student's image and container do, without trusting their code to report it.

- `install_layers`: which layers of an image install given Python distributions (read from the
  image's own layer tars via `docker save`, whatever tool installed them: pip, pip3, uv, ...).
- `processes`: the processes of a container (uid, command line, whether it listens on a port), as
  seen by the course's own python image sharing the container's PID and network namespaces.
- `freeze`: stop every process of a container (SIGSTOP), so its service stops answering.

The helper containers run the course's base images, never a student's image, and get LIMITS.
"""
from __future__ import annotations

import io
import json
import re
import tarfile

import docker
from docker.errors import DockerException

from labkit.resources import RUN_LABEL
from labkit.testing import LIMITS, Feedback

PROBE_IMAGE = "python:3.11-slim"   # the course's image, used for the grader's own probes
FREEZE_IMAGE = "debian:bookworm-slim"
# A distribution's METADATA file is written only when it is installed, whatever the installer.
INSTALLED = re.compile(r"(?:site|dist)-packages/([A-Za-z0-9_.]+)-[^/]+\.dist-info/METADATA$")


class ChunkStream(io.RawIOBase):
    """A file object over an iterator of byte chunks (docker save's stream)."""

    def __init__(self, chunks) -> None:
        self.chunks, self.buffer = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.buffer:
            self.buffer = next(self.chunks, b"")
            if not self.buffer:
                return 0
        size = min(len(target), len(self.buffer))
        target[:size], self.buffer = self.buffer[:size], self.buffer[size:]
        return size


def install_layers(client: docker.DockerClient, image: str, distributions: set[str]) -> dict[int, set[str]]:
    """{layer index (0 = base): distributions it installs} for the layers that install any of them."""
    wanted = {normalise(name) for name in distributions}
    stream = io.BufferedReader(ChunkStream(client.api.get_image(image, chunk_size=1 << 20)), 1 << 20)
    found: dict[str, set[str]] = {}
    order: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|") as saved:
        for member in saved:
            # Engine < 25 saves <id>/layer.tar; Engine 25+ an OCI layout, whose layers are blobs/sha256/<digest>
            # among the JSON blobs (config, manifests); manifest.json names the layers either way.
            if member.isfile() and (member.name.endswith("/layer.tar") or member.name.startswith("blobs/")):
                try:
                    # "r|*": the containerd image store saves its layers gzip-compressed
                    with tarfile.open(fileobj=saved.extractfile(member), mode="r|*") as layer:
                        names = {normalise(m.group(1)) for m in map(INSTALLED.search, (e.name for e in layer)) if m}
                except tarfile.ReadError:
                    continue  # a JSON blob, not a layer
                found[member.name] = names & wanted
            elif member.name == "manifest.json":
                order = json.load(saved.extractfile(member))[0]["Layers"]
    return {index: found[name] for index, name in enumerate(order) if found.get(name)}


def normalise(distribution: str) -> str:
    """scikit-learn, scikit_learn and Scikit.Learn name the same distribution."""
    return re.sub(r"[-_.]+", "_", distribution).lower()


def requirement_names(requirements: str) -> set[str]:
    """Distribution names of a requirements.txt text."""
    names = set()
    for line in requirements.splitlines():
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#")[0])
        if name:
            names.add(name.group(1))
    return names


PROCESS_PROBE = r"""
import json, os
port, me, inodes = {port}, os.getpid(), set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        for line in open(table).read().splitlines()[1:]:
            field = line.split()
            if field[3] == "0A" and int(field[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(field[9])
    except OSError:
        pass
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == me:
        continue
    try:
        command = [part.decode(errors="replace") for part in open(f"/proc/{{pid}}/cmdline", "rb").read().split(b"\0") if part]
        uid = int(next(l for l in open(f"/proc/{{pid}}/status") if l.startswith("Uid:")).split()[1])
        sockets = set()
        for fd in os.listdir(f"/proc/{{pid}}/fd"):
            try:
                target = os.readlink(f"/proc/{{pid}}/fd/{{fd}}")
            except OSError:
                continue
            if target.startswith("socket:["):
                sockets.add(target[8:-1])
    except (OSError, StopIteration):
        continue
    found.append({{"pid": int(pid), "uid": uid, "command": command[:20], "listens": bool(sockets & inodes)}})
print(json.dumps(found))
"""


def processes(client: docker.DockerClient, container, run_id: str, port: int = 8000) -> list[dict]:
    """[{pid, uid, command, listens}] of the container's processes (`listens`: holds its listening
    socket on `port`), read by the course's python image in the container's namespaces."""
    container.reload()
    try:
        output = client.containers.run(
            PROBE_IMAGE, ["python", "-c", PROCESS_PROBE.format(port=port)], remove=True,
            pid_mode=f"container:{container.id}", network_mode=f"container:{container.id}",
            cap_add=["SYS_PTRACE"],  # to read the fds of processes of another user
            labels={RUN_LABEL: run_id}, **LIMITS.container_kwargs())
    except DockerException as error:
        raise Feedback(f"expected the container to keep running while the grader looks at its processes; "
                       f"{str(error)[:300]}") from None
    return json.loads(output[:LIMITS.read_bytes])


def freeze(client: docker.DockerClient, container, run_id: str) -> None:
    """SIGSTOP every process of the container: PID 1 through the engine (a PID namespace's init
    ignores SIGSTOP from inside it), the others from a helper in the same PID namespace."""
    client.api.kill(container.id, signal="SIGSTOP")
    client.containers.run(FREEZE_IMAGE, ["sh", "-c", "kill -STOP -1 2>/dev/null; true"], remove=True,
                          pid_mode=f"container:{container.id}", labels={RUN_LABEL: run_id},
                          **LIMITS.container_kwargs())
