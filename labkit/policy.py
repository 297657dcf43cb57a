"""What a student's compose or stack file may ask of the grader's Docker engine, checked before
anything starts, and the limits the grader adds to every service it starts.

A submission is untrusted: its compose file must not reach the host (bind mounts, the Docker
socket, host namespaces, privileges, files outside its folder), nor the grader's environment
(interpolation sees only the variables the grader sets), nor start more than the exercise names.
Each violation names the key, so the feedback says what to change.

Two passes, because `docker compose config` itself reads files (env_file, extends, include):
- `check_sources(raw)`: the file as written, before compose resolves it: only what compose would
  read from the host while resolving, and the service names.
- `check(resolved)`: the file as `docker compose config` / `docker stack config` resolved it
  (interpolated, long syntax): everything else.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path

import yaml

from labkit.testing import LIMITS

MAX_FILE_BYTES = 64 * 1024  # a compose file of the labs is ~2 KiB
MAX_REPLICAS = 5  # the labs need 3 at most; more only loads the shared machine

# The limits every service the grader starts runs with (a generated override file adds them):
# the same as every other container of the grader (labkit.testing.LIMITS).
SERVICE_MEMORY = LIMITS.memory
SERVICE_CPUS = f"{LIMITS.nano_cpus / 1e9:g}"
SERVICE_PIDS = LIMITS.pids
LOG_MAX_SIZE, LOG_MAX_FILES = LIMITS.log_bytes, "1"
# Lab 03 grades the api's own limits: the grader keeps them, but not above these ceilings.
MEMORY_CEILING = 1024 ** 3
CPUS_CEILING = 1.0

TOP_LEVEL = {"services", "volumes", "networks", "configs", "secrets", "name", "version"}
# Keys that give a container the host or its privileges. sysctls: no lab needs them, and the
# namespaced ones still retune the kernel for the container. extra_hosts: no lab needs it, and
# it can make the service name a requirement checks (redis) point somewhere else.
FORBIDDEN = {
    "privileged": "runs the container with every privilege of the host",
    "cap_add": "adds kernel capabilities",
    "devices": "passes host devices into the container",
    "device_cgroup_rules": "opens host devices to the container",
    "security_opt": "switches off the container's confinement (seccomp, AppArmor)",
    "userns_mode": "changes the user namespace (host: root in the container is root on the host)",
    "sysctls": "changes kernel parameters (no lab needs them)",
    "extra_hosts": "rewrites name resolution (no lab needs it; it can redirect a service name)",
    "cgroup_parent": "places the container in a host cgroup",
    "volumes_from": "mounts another container's volumes",
    "runtime": "picks another container runtime",
    "oom_kill_disable": "exempts the container from the out-of-memory killer",
    "oom_score_adj": "changes how the out-of-memory killer treats the container",
    "use_api_socket": "gives the container the Docker API socket",
    "gpus": "passes host GPUs into the container",
    "isolation": "changes the container's isolation",
    "credential_spec": "reads host credentials",
}
NAMESPACES = ("pid", "ipc", "uts", "cgroup", "network_mode")
BUILD_FORBIDDEN = ("additional_contexts", "ssh", "secrets", "network", "extra_hosts", "privileged",
                   "entitlements")
FILE_KEYS = ("env_file", "label_file")


class PolicyError(Exception):
    """A file the grader will not start; str() is the student's feedback."""


def load(path: Path) -> dict:
    """The compose/stack file as written (YAML), size-capped; PolicyError when unreadable."""
    if path.is_symlink() or not path.is_file():
        raise PolicyError(f"{path.name} must be a regular file in the lab folder")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise PolicyError(f"{path.name} is {path.stat().st_size} bytes; at most {MAX_FILE_BYTES} are read")
    try:
        doc = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError as error:
        raise PolicyError(f"{path.name} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise PolicyError(f"{path.name} must be a YAML mapping with a `services:` key")
    return doc


def enforce(violations: list[str], file_name: str) -> None:
    """Raise the feedback for `violations` (none: return)."""
    if violations:
        shown = "; ".join(violations[:5]) + (f"; and {len(violations) - 5} more" if len(violations) > 5 else "")
        raise PolicyError(f"{file_name} was not started (the grader's policy for compose files): {shown}")


def services_of(doc: dict) -> dict:
    services = doc.get("services")
    return services if isinstance(services, dict) else {}


def check_sources(doc: dict, lab_dir: Path, allowed_services: Collection[str]) -> list[str]:
    """The file as written: what resolving it would read from the host, fixed names, its services."""
    found = [f"top-level `{key}`: not allowed (allowed: {', '.join(sorted(TOP_LEVEL))}, x-*)"
             for key in doc if key not in TOP_LEVEL and not str(key).startswith("x-")]
    found += common_violations(doc, lab_dir, allowed_services)
    for name, service in services_of(doc).items():
        extends = service.get("extends") if isinstance(service, dict) else None
        if isinstance(extends, dict) and extends.get("file"):
            problem = outside(extends["file"], lab_dir)
            found += [f"services.{name}.extends.file: {problem}"] if problem else []
    for kind in ("volumes", "networks"):
        for key, spec in (doc.get(kind) or {}).items():
            if isinstance(spec, dict) and spec.get("name"):
                # A fixed name is shared by every project on the engine: another run's (or the course's) data.
                found.append(f"{kind}.{key}.name: not allowed (a fixed name is shared with every other project)")
    return found


def common_violations(doc: dict, lab_dir: Path, allowed_services: Collection[str]) -> list[str]:
    """Checks that hold for the file as written and as resolved: services, files it reads."""
    found = foreign_services(services_of(doc), allowed_services)
    for name, service in services_of(doc).items():
        for key in FILE_KEYS:
            paths = file_paths(service.get(key)) if isinstance(service, dict) else []
            found += [f"services.{name}.{key}: {problem}" for problem in (outside(p, lab_dir) for p in paths)
                      if problem]
    return found


def check(config: dict, lab_dir: Path, allowed_services: Collection[str],
          publishers: Mapping[str, Collection[int]] | None = None) -> list[str]:
    """The resolved file: host access, privileges, foreign services, files outside the folder,
    replicas, and (with `publishers`) which service may publish which host port."""
    services = services_of(config)
    found = common_violations(config, lab_dir, allowed_services)
    for name, service in services.items():
        if isinstance(service, dict):
            found += service_violations(f"services.{name}", service, lab_dir)
            if publishers is not None:
                found += port_violations(f"services.{name}", service, publishers.get(name, ()))
    for kind in ("volumes", "networks", "configs", "secrets"):
        for key, spec in (config.get(kind) or {}).items():
            found += top_level_violations(f"{kind}.{key}", spec or {}, lab_dir)
    return found


def foreign_services(services: dict, allowed: Collection[str]) -> list[str]:
    extra = [name for name in services if name not in allowed]
    return [f"services.{name}: the exercise names only {', '.join(allowed)}" for name in extra]


def service_violations(where: str, service: dict, lab_dir: Path) -> list[str]:
    found = [f"{where}.{key}: not allowed ({why})" for key, why in FORBIDDEN.items()
             if service.get(key) not in (None, False, [], {}, "")]
    for key in NAMESPACES:
        value = str(service.get(key) or "")
        if value == "host" or value.startswith(("service:", "container:")):
            found.append(f"{where}.{key}: {value!r} shares a namespace with the host or another container")
    for index, volume in enumerate(service.get("volumes") or []):
        problem = volume_problem(volume)
        if problem:
            found.append(f"{where}.volumes[{index}]: {problem}; use a named volume (name:/path)")
    found += build_violations(f"{where}.build", service.get("build"), lab_dir)
    deploy = service.get("deploy") or {}
    for key, value in (("deploy.replicas", deploy.get("replicas")), ("scale", service.get("scale"))):
        if value is not None and not (isinstance(value, int) and 0 <= value <= MAX_REPLICAS):
            found.append(f"{where}.{key}: {value!r}; at most {MAX_REPLICAS}")
    limits = (deploy.get("resources") or {}).get("limits") or {}
    if limits.get("memory") is not None and to_bytes(limits["memory"]) > MEMORY_CEILING:
        found.append(f"{where}.deploy.resources.limits.memory: {limits['memory']}; at most 1G")
    if limits.get("cpus") is not None and to_float(limits["cpus"]) > CPUS_CEILING:
        found.append(f"{where}.deploy.resources.limits.cpus: {limits['cpus']}; at most {CPUS_CEILING:g}")
    return found


def volume_problem(volume) -> str | None:
    """Why a service's volume entry reaches the host (None: a named or anonymous volume, a tmpfs)."""
    if isinstance(volume, str):
        source, _, rest = volume.partition(":")
        if not rest:  # "/data": an anonymous volume
            return None
        return f"the host path {source!r} is mounted" if host_path(source) else None
    if not isinstance(volume, dict):
        return f"{volume!r} is not a volume"
    kind = volume.get("type", "volume")
    if kind in ("volume", "tmpfs"):
        source = str(volume.get("source") or "")
        return f"the host path {source!r} is mounted" if host_path(source) else None
    return f"a {kind} mount of {volume.get('source')!r}"


def host_path(source: str) -> bool:
    """Whether a volume source names a host path (or could, after interpolation) rather than a volume."""
    return bool(source) and (source[0] in "/.~$" or "/" in source or "\\" in source)


def build_violations(where: str, build, lab_dir: Path) -> list[str]:
    if build is None:
        return []
    build = {"context": build} if isinstance(build, str) else build if isinstance(build, dict) else {}
    context = str(build.get("context") or ".")
    found = [f"{where}.{key}: not allowed" for key in BUILD_FORBIDDEN if build.get(key)]
    if "://" in context or context.startswith("git@"):
        return found + [f"{where}.context: {context!r} is not a folder of the submission"]
    problem = outside(context, lab_dir)
    if problem:
        return found + [f"{where}.context: {problem}"]
    dockerfile = build.get("dockerfile")
    problem = dockerfile and outside(dockerfile, (lab_dir / context).resolve())
    return found + ([f"{where}.dockerfile: {problem}"] if problem else [])


def top_level_violations(where: str, spec: dict, lab_dir: Path) -> list[str]:
    if not isinstance(spec, dict):
        return []
    found = []
    if spec.get("external"):
        found.append(f"{where}.external: not allowed (it would use an object of another project)")
    if where.startswith("volumes."):
        if spec.get("driver") not in (None, "local"):
            found.append(f"{where}.driver: only the local driver")
        if spec.get("driver_opts"):
            found.append(f"{where}.driver_opts: not allowed (they can bind-mount a host path)")
    if where.startswith("networks.") and spec.get("driver") not in (None, "bridge", "overlay"):
        found.append(f"{where}.driver: {spec['driver']!r}; only bridge or overlay")
    if spec.get("file"):
        problem = outside(spec["file"], lab_dir)
        found += [f"{where}.file: {problem}"] if problem else []
    return found


def port_violations(where: str, service: dict, allowed: Collection[int]) -> list[str]:
    found = []
    for port in service.get("ports") or []:
        published = port.get("published") if isinstance(port, dict) else str(port).rsplit(":", 1)[0]
        published = str(published or "").rsplit(":", 1)[-1]
        if published and (not published.isdigit() or int(published) not in allowed):
            found.append(f"{where}.ports: host port {published} is published; only "
                         f"{'the gateway, on ${GATEWAY_PORT}' if not allowed else sorted(allowed)}")
    return found


def file_paths(value) -> list[str]:
    """The paths of an env_file/label_file value: a string, a list of strings or of {path: ...}."""
    items = value if isinstance(value, list) else [value] if value else []
    return [str(item.get("path") if isinstance(item, dict) else item) for item in items]


def outside(path, lab_dir: Path) -> str | None:
    """Why `path` (relative to the lab folder) is not a file of the submission; None when it is."""
    text = str(path)
    if "$" in text:
        return f"{text!r}: no variables in file paths"
    resolved = (lab_dir / text).resolve()
    if not resolved.is_relative_to(lab_dir.resolve()):
        return f"{text!r} is outside the lab folder"
    return None


def to_bytes(value) -> float:
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)i?b?\s*", str(value).lower())
    if not match:
        return float("inf")
    return float(match[1]) * 1024 ** "bkmgt".index(match[2] or "b")


def to_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")


def minimal_env(home: Path, **grader_variables: str) -> dict[str, str]:
    """The environment compose runs with: what it needs to find the engine, and the grader's own
    variables; nothing else of the grader's shell reaches the file's interpolation."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    env.update({key: os.environ[key] for key in ("DOCKER_HOST",) if os.environ.get(key)})
    env.update(grader_variables)
    return env


def compose_command() -> list[str]:
    """Compose v2, run as a standalone binary: with HOME pointing elsewhere, `docker compose`
    would not find its plugin."""
    folders = [os.environ.get("DOCKER_CONFIG", ""), str(Path.home() / ".docker")]
    for folder in filter(None, folders):
        plugin = Path(folder) / "cli-plugins" / "docker-compose"
        if plugin.is_file():
            return [str(plugin)]
    for folder in ("/usr/local/lib/docker", "/usr/local/libexec/docker", "/usr/lib/docker", "/usr/libexec/docker"):
        plugin = Path(folder) / "cli-plugins" / "docker-compose"
        if plugin.is_file():
            return [str(plugin)]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else ["docker", "compose"]


def stack_schema_has_pids(version) -> bool:
    """Whether a stack file of this `version:` may set deploy.resources.limits.pids (schema 3.9+;
    no version, or "3", is the newest schema)."""
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?", str(version or "3").strip())
    return not match or match[2] is None or (int(match[1]), int(match[2])) >= (3, 9)


def limits_override(services: dict, keep_limits: Collection[str] = (), pids: bool = True) -> dict:
    """A compose override giving every service memory/CPU/pids limits and a bounded json-file log.
    The short forms (mem_limit, cpus, pids_limit) are reset: compose refuses two different values.
    Services in `keep_limits` keep their own memory/CPU limits (a requirement grades them; `check`
    caps them) and get the grader's only where they set none."""
    override = {}
    for name, service in services.items():
        own = (((service or {}).get("deploy") or {}).get("resources") or {}).get("limits") or {}
        limits = {"memory": SERVICE_MEMORY, "cpus": SERVICE_CPUS, **({"pids": SERVICE_PIDS} if pids else {})}
        if name in keep_limits:
            limits.update({key: own[key] for key in ("memory", "cpus") if own.get(key) is not None})
        override[name] = {
            "deploy": {"resources": {"limits": limits}},
            "logging": {"driver": "json-file", "options": {"max-size": LOG_MAX_SIZE, "max-file": LOG_MAX_FILES}},
        }
    return override


def reset_short_limits(services: dict) -> dict:
    """Override lines that drop the short forms of limits and a fixed container name (compose only)."""
    return {name: {key: None for key in ("mem_limit", "memswap_limit", "cpus", "pids_limit", "container_name")
                   if (service or {}).get(key) is not None} for name, service in services.items()}


class ResetDumper(yaml.SafeDumper):
    """Writes None as compose's `!reset null` and EMPTY as `!reset []` (drop the key, or the list,
    of the file it overrides: compose merges lists otherwise)."""


class Empty(list):
    """An empty list that replaces a list of the file it overrides."""


EMPTY = Empty()
ResetDumper.add_representer(type(None), lambda dumper, _: dumper.represent_scalar("!reset", "null"))
ResetDumper.add_representer(Empty, lambda dumper, _: dumper.represent_sequence("!reset", [], flow_style=True))


def write_override(path: Path, overrides: dict, version: str | None = None) -> Path:
    """The override file; `version`: the student's file's `version:` (a stack refuses two files
    of different versions)."""
    text = yaml.dump({**({"version": str(version)} if version else {}), "services": overrides},
                     Dumper=ResetDumper, sort_keys=False)
    path.write_text(text.replace("!reset 'null'", "!reset null"))  # PyYAML quotes a tagged null
    return path


def merge(base: dict, extra: dict) -> dict:
    """Deep merge of override dicts (extra wins)."""
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged
