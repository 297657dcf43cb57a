"""The base images the labs name: pulled when a registry answers, else built as offline stand-ins.

A stand-in is made from a Debian bookworm rootfs (debootstrap, cached) and Debian packages, tagged
with the official name, and labelled `org.labkit.standin=<hash of its recipe>` so that a changed
recipe is rebuilt and an unchanged one costs nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from labkit.engine import builder_env

STANDINS_DIR = Path(__file__).with_name("standins")
CACHE_DIR = Path(os.environ.get("LABKIT_CACHE", Path.home() / ".cache" / "labkit"))
DEBIAN_MIRROR = os.environ.get("LABKIT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Where the host's CA bundle lives in a stand-in: pip inside a build trusts it, so builds work
# behind a TLS-intercepting proxy as well as on an open network.
CA_IN_IMAGE = "/usr/local/share/labkit/host-ca-bundle.crt"
STANDIN_LABEL = "org.labkit.standin"
PULL_TIMEOUT = 120


@dataclass(frozen=True)
class BaseImage:
    tag: str
    dockerfile: str | None  # recipe in standins/; None: the root image, imported from the rootfs
    files: tuple[str, ...] = ()  # other files from standins/ that the recipe copies
    suite: str = "bookworm"  # the Debian release of a root image
    buildargs: tuple[tuple[str, str], ...] = ()

    def recipe_hash(self) -> str:
        digest = hashlib.sha256(self.tag.encode())
        for name in (self.dockerfile, *self.files):
            if name:
                digest.update((STANDINS_DIR / name).read_bytes())
        for key, value in self.buildargs:
            digest.update(f"{key}={value}".encode())
        return digest.hexdigest()[:16]


ROOT = BaseImage("debian:bookworm-slim", None)
BASE_IMAGES = (
    ROOT,
    BaseImage("python:3.11-slim", "python.Dockerfile"),
    BaseImage("redis:7", "redis.Dockerfile", ("entrypoint.sh",)),
    BaseImage("memcached:1.6", "memcached.Dockerfile", ("entrypoint.sh",)),
    BaseImage("nginx:1.25", "nginx.Dockerfile", ("nginx-default.conf",)),
    BaseImage("rabbitmq:3", "rabbitmq.Dockerfile", ("entrypoint.sh",)),
)


def say(message: str) -> None:
    print(f"[images] {message}", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kwargs)


def image_labels(tag: str) -> dict | None:
    """The labels of a local image, or None when the tag does not exist."""
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip() or "null") or {}


def is_current(image: BaseImage) -> bool:
    """True for an official image, or a stand-in built from the current recipe."""
    labels = image_labels(image.tag)
    if labels is None:
        return False
    standin = labels.get(STANDIN_LABEL)
    return standin is None or standin == image.recipe_hash()


def try_pull(tag: str) -> bool:
    try:
        result = subprocess.run(["docker", "pull", "-q", tag], capture_output=True, text=True, timeout=PULL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def make_rootfs(suite: str = "bookworm") -> Path:
    """A minimal Debian rootfs of `suite` as a tar file, made once and cached."""
    rootfs_tar = CACHE_DIR / f"{suite}-minbase-rootfs.tar"
    if rootfs_tar.exists():
        say(f"rootfs: cached ({rootfs_tar})")
        return rootfs_tar
    if shutil.which("debootstrap") is None:
        raise SystemExit(
            "[images] debootstrap is missing: 'apt-get install debootstrap' (Debian) "
            "or connect to a registry so the official images can be pulled."
        )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        rootfs = Path(tmp) / "rootfs"
        say(f"rootfs: debootstrap {suite} from {DEBIAN_MIRROR} (about a minute, once) ...")
        run(["debootstrap", "--variant=minbase", suite, str(rootfs), DEBIAN_MIRROR],
            stdout=subprocess.DEVNULL)
        # Slim like the official image: no apt lists, docs or caches.
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
            (rootfs / junk).mkdir(parents=True, exist_ok=True)
        partial = rootfs_tar.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(rootfs, arcname=".")
        partial.rename(rootfs_tar)
    say(f"rootfs: cached as {rootfs_tar}")
    return rootfs_tar


def build_root(image: BaseImage) -> None:
    """debian:<suite>-slim from the rootfs, with the host's CA bundle added."""
    rootfs = make_rootfs(image.suite)
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        shutil.copy(rootfs, context / "rootfs.tar")
        if HOST_CA_BUNDLE.exists():
            shutil.copy(HOST_CA_BUNDLE, context / "ca.crt")
        else:
            (context / "ca.crt").write_text("")
        (context / "Dockerfile").write_text(
            "FROM scratch\n"
            "ADD rootfs.tar /\n"
            f"COPY ca.crt {CA_IN_IMAGE}\n"
            f"ENV LANG=C.UTF-8 SSL_CERT_FILE={CA_IN_IMAGE} PIP_CERT={CA_IN_IMAGE} REQUESTS_CA_BUNDLE={CA_IN_IMAGE}\n"
            'CMD ["bash"]\n'
        )
        docker_build(image, context, "Dockerfile")


def build_standin(image: BaseImage) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        for name in (image.dockerfile, *image.files):
            shutil.copy(STANDINS_DIR / name, context / name)
        docker_build(image, context, image.dockerfile)


def docker_build(image: BaseImage, context: Path, dockerfile: str) -> None:
    labels = {STANDIN_LABEL: image.recipe_hash(),
              "org.labkit.description": f"offline stand-in for {image.tag}, built by labkit from Debian {image.suite}"}
    cli_build(image.tag, context / dockerfile, context, labels, dict(image.buildargs))


class BuildFailed(SystemExit):
    """`docker build` failed; the message names the image, the build's output went to stderr."""


def cli_build(tag: str, dockerfile: Path, context: Path, labels: dict[str, str],
              buildargs: dict[str, str] | None = None) -> None:
    """`docker build` with the engine's builder (the classic one where there is no BuildKit)."""
    cmd = ["docker", "build", "-q", "-t", tag, "-f", str(dockerfile)]
    cmd += [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    cmd += [arg for key, value in (buildargs or {}).items() for arg in ("--build-arg", f"{key}={value}")]
    result = subprocess.run([*cmd, str(context)], capture_output=True, text=True, env={**os.environ, **builder_env()})
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise BuildFailed(f"[images] building {tag} failed (see above)")


def ensure(image: BaseImage, *, allow_pull: bool) -> str:
    """Make one base image present; returns how ('present', 'pulled', 'built')."""
    if is_current(image):
        return "present"
    if allow_pull and try_pull(image.tag):
        return "pulled"
    (build_root if image.dockerfile is None else build_standin)(image)
    return "built"


def registry_answers() -> bool:
    """One cheap pull tells whether Docker Hub (or a mirror) answers at all."""
    return try_pull("hello-world:latest")


def ensure_all(tags: list[str] | None = None) -> None:
    wanted = [i for i in BASE_IMAGES if not tags or i.tag in tags]
    missing = [i for i in wanted if not is_current(i)]
    if not missing:
        say("all base images present: " + ", ".join(i.tag for i in wanted))
        return
    allow_pull = registry_answers()
    say("registry answers: pulling" if allow_pull else "no registry: building offline stand-ins")
    for number, image in enumerate(missing, 1):
        started = time.monotonic()
        say(f"({number}/{len(missing)}) {image.tag} ...")
        how = ensure(image, allow_pull=allow_pull)
        say(f"({number}/{len(missing)}) {image.tag}: {how} in {time.monotonic() - started:.0f}s")
    subprocess.run(["docker", "image", "rm", "-f", "hello-world:latest"], capture_output=True)
