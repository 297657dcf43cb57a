"""labkit.policy without Docker: what a compose/stack file may ask of the grader's engine, and the
override that bounds every service."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labkit import policy

ROOT = Path(__file__).resolve().parent.parent
LAB02 = ROOT / "solutions" / "02-compose"
LAB03 = ROOT / "solutions" / "03-swarm"
SERVICES = ("api", "redis")


def compose(**redis) -> dict:
    """A resolved-looking compose file: api and a redis with the given keys."""
    return {"services": {"api": {"build": {"context": str(LAB02)}}, "redis": {"image": "redis:7", **redis}}}


def problems(config: dict, lab_dir: Path = LAB02, **kwargs) -> list[str]:
    return policy.check(config, lab_dir, SERVICES, **kwargs)


def test_the_reference_files_pass_as_written():
    assert policy.check_sources(policy.load(LAB02 / "compose.yaml"), LAB02, SERVICES) == []
    assert policy.check(policy.load(LAB02 / "compose.yaml"), LAB02, SERVICES) == []
    assert policy.check(policy.load(LAB03 / "stack.yaml"), LAB03, ("api", "gateway")) == []


@pytest.mark.parametrize("volume", ["/tmp:/data", "/:/host", "/var/run/docker.sock:/var/run/docker.sock",
                                    "./data:/data", "~/x:/data", "../up:/data", "${HOME}:/data",
                                    {"type": "bind", "source": "/tmp", "target": "/data"},
                                    {"type": "npipe", "source": "x", "target": "/data"},
                                    {"type": "volume", "source": "/etc", "target": "/data"}])
def test_a_host_path_mount_is_refused_naming_the_key(volume):
    found = problems(compose(volumes=[volume]))
    assert len(found) == 1 and found[0].startswith("services.redis.volumes[0]"), found


@pytest.mark.parametrize("volume", ["redis-data:/data", "/data", "redis-data:/data:rw",
                                    {"type": "volume", "source": "redis-data", "target": "/data"},
                                    {"type": "tmpfs", "target": "/tmp"}])
def test_named_anonymous_and_tmpfs_volumes_pass(volume):
    assert problems(compose(volumes=[volume])) == []


@pytest.mark.parametrize("key, value", [("privileged", True), ("cap_add", ["SYS_ADMIN"]), ("devices", ["/dev/sda"]),
                                        ("security_opt", ["seccomp=unconfined"]), ("userns_mode", "host"),
                                        ("sysctls", {"net.core.somaxconn": 1024}),
                                        ("extra_hosts", ["redis:10.0.0.1"]), ("volumes_from", ["other"]),
                                        ("use_api_socket", True), ("cgroup_parent", "/")])
def test_privileges_and_host_access_are_refused(key, value):
    assert problems(compose(**{key: value})) == [f"services.redis.{key}: not allowed ({policy.FORBIDDEN[key]})"]


@pytest.mark.parametrize("key", ["pid", "ipc", "uts", "network_mode"])
@pytest.mark.parametrize("value", ["host", "service:api", "container:other"])
def test_shared_namespaces_are_refused(key, value):
    found = problems(compose(**{key: value}))
    assert len(found) == 1 and found[0].startswith(f"services.redis.{key}"), found


def test_harmless_values_of_those_keys_pass():
    assert problems(compose(privileged=False, cap_add=[], network_mode="bridge", ipc="private")) == []


def test_a_service_the_exercise_does_not_name_is_refused():
    config = compose()
    config["services"]["miner"] = {"image": "redis:7"}
    assert problems(config) == ["services.miner: the exercise names only api, redis"]


@pytest.mark.parametrize("env_file", ["../../../etc/passwd", "/etc/passwd", ["ok.env", "/root/.bashrc"],
                                      [{"path": "/etc/shadow", "required": False}], "${HOME}/x.env"])
def test_an_env_file_outside_the_lab_folder_is_refused_before_compose_reads_it(env_file):
    raw = compose(env_file=env_file)
    found = policy.check_sources(raw, LAB02, SERVICES)
    assert len(found) == 1 and found[0].startswith("services.redis.env_file"), found


def test_an_env_file_inside_the_folder_passes():
    assert policy.check_sources(compose(env_file=["redis.env", "./conf/x.env"]), LAB02, SERVICES) == []


@pytest.mark.parametrize("build, key", [({"context": "/"}, "context"), ("..", "context"),
                                        ({"context": "https://github.com/x/y.git"}, "context"),
                                        ({"context": ".", "dockerfile": "../../Dockerfile"}, "dockerfile"),
                                        ({"context": ".", "network": "host"}, "network"),
                                        ({"context": ".", "additional_contexts": {"x": "/"}}, "additional_contexts")])
def test_a_build_reaching_outside_the_folder_is_refused(build, key):
    config = compose()
    config["services"]["api"]["build"] = build
    found = problems(config)
    assert len(found) == 1 and found[0].startswith(f"services.api.build.{key}"), found


def test_extends_of_a_file_outside_and_include_are_refused():
    raw = compose(extends={"file": "../../compose.yaml", "service": "redis"})
    raw["include"] = ["/etc/compose.yaml"]
    found = policy.check_sources(raw, LAB02, SERVICES)
    assert sorted(f.split(":")[0] for f in found) == ["services.redis.extends.file", "top-level `include`"]


@pytest.mark.parametrize("kind, spec, key", [
    ("volumes", {"driver_opts": {"type": "none", "o": "bind", "device": "/"}}, "driver_opts"),
    ("volumes", {"external": True}, "external"), ("volumes", {"driver": "sshfs"}, "driver"),
    ("networks", {"external": True}, "external"), ("networks", {"driver": "host"}, "driver"),
    ("configs", {"file": "/etc/shadow"}, "file")])
def test_top_level_objects_that_reach_the_host_or_other_projects_are_refused(kind, spec, key):
    config = {**compose(), kind: {"x": spec}}
    assert [f.split(":")[0] for f in problems(config)] == [f"{kind}.x.{key}"]


def test_a_fixed_volume_name_is_refused_as_written():
    raw = {**compose(), "volumes": {"redis-data": {"name": "shared"}}}
    assert [f.split(":")[0] for f in policy.check_sources(raw, LAB02, SERVICES)] == ["volumes.redis-data.name"]


def test_too_many_replicas_and_oversized_limits_are_refused():
    found = problems(compose(deploy={"replicas": 50, "resources": {"limits": {"memory": "64G", "cpus": "8"}}}))
    assert [f.split(":")[0] for f in found] == ["services.redis.deploy.replicas",
                                                "services.redis.deploy.resources.limits.memory",
                                                "services.redis.deploy.resources.limits.cpus"]


def test_only_the_named_publisher_may_publish_and_only_its_port():
    config = compose(ports=[{"target": 6379, "published": "6379"}])
    config["services"]["api"]["ports"] = [{"target": 8000, "published": "4321"}]
    found = problems(config, publishers={"api": {4321}})
    assert [f.split(":")[0] for f in found] == ["services.redis.ports"]


def test_feedback_is_short_and_names_every_key():
    with pytest.raises(policy.PolicyError) as raised:
        policy.enforce(problems(compose(privileged=True, volumes=["/:/host"])), "compose.yaml")
    message = str(raised.value)
    assert "services.redis.privileged" in message and "services.redis.volumes[0]" in message
    assert message.startswith("compose.yaml was not started") and len(message) < 400


def test_an_oversized_or_linked_or_non_mapping_file_is_refused(tmp_path):
    big = tmp_path / "compose.yaml"
    big.write_text("#" * (policy.MAX_FILE_BYTES + 1))
    link = tmp_path / "link.yaml"
    link.symlink_to("/etc/hostname")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n")
    for path in (big, link, listing):
        with pytest.raises(policy.PolicyError):
            policy.load(path)


def test_the_minimal_environment_holds_only_what_compose_needs_and_the_graders_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "x")
    env = policy.minimal_env(tmp_path, API_PORT="1234")
    assert set(env) <= {"PATH", "HOME", "DOCKER_HOST", "API_PORT"} and env["HOME"] == str(tmp_path)


def test_the_override_bounds_every_service_and_resets_the_short_forms(tmp_path):
    services = {"api": {"deploy": {"resources": {"limits": {"memory": "300M"}}}},
                "redis": {"mem_limit": "8g", "container_name": "redis"}}
    overrides = policy.merge(policy.limits_override(services, keep_limits={"api"}),
                             policy.reset_short_limits(services))
    text = policy.write_override(tmp_path / "o.yaml", overrides).read_text()
    assert "mem_limit: !reset null" in text and "container_name: !reset null" in text
    loaded = yaml.safe_load(text.replace("!reset ", ""))["services"]
    assert loaded["api"]["deploy"]["resources"]["limits"] == {"memory": "300M", "cpus": policy.SERVICE_CPUS,
                                                              "pids": policy.SERVICE_PIDS}
    assert loaded["redis"]["deploy"]["resources"]["limits"]["memory"] == policy.SERVICE_MEMORY
    assert loaded["redis"]["logging"] == {"driver": "json-file", "options": {
        "max-size": policy.LOG_MAX_SIZE, "max-file": policy.LOG_MAX_FILES}}


@pytest.mark.parametrize("version, has_pids", [(None, True), ("3", True), (3.8, False), ("3.8", False),
                                               ("3.9", True), ("3.13", True), ("2.4", False)])
def test_only_stack_schemas_from_3_9_get_a_pids_limit(version, has_pids):
    assert policy.stack_schema_has_pids(version) is has_pids
    limits = policy.limits_override({"api": {}}, pids=has_pids)["api"]["deploy"]["resources"]["limits"]
    assert ("pids" in limits) is has_pids
