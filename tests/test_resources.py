"""labkit clean: a finished run's build layers go, and only those; shared layers stay cached. Free ports."""
import io
import secrets
import socket

import docker
import pytest

from labkit.resources import (LAYERS, PORT_RANGE, RUN_LABEL, base36, finished, free_port, leftovers,
                              new_run_id, process_start, remove_labelled)

BASE = "debian:bookworm-slim"


@pytest.fixture
def client():
    """A Docker client (the base image exists: `labkit images`)."""
    client = docker.from_env(timeout=120)
    client.images.get(BASE)
    yield client
    client.close()


def build(client, steps: list[str], **kwargs) -> str:
    dockerfile = "\n".join([f"FROM {BASE}", *steps]) + "\n"
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True, forcerm=True, **kwargs)
    return image.id


def exists(client, image_id: str) -> bool:
    try:
        client.images.get(image_id)
        return True
    except docker.errors.ImageNotFound:
        return False


def remove_tags(client, *tags: str) -> None:
    """Remove what a test tagged, whatever the test got to."""
    for tag in tags:
        try:
            client.images.remove(tag)
        except docker.errors.ImageNotFound:
            pass


def test_clean_removes_a_finished_runs_own_layers_and_keeps_shared_ones(client, capsys):
    token = secrets.token_hex(4)
    run = f"999999999-{token}"  # no such process: a finished run
    shared_step, own_step = f"RUN echo shared-{token} > /shared", f"RUN echo own-{token} > /own"
    keeper = f"labkit-test-keeper:{token}"  # an honest image, not the grader's: it shares one layer
    build(client, [shared_step], tag=keeper)
    graded = build(client, [shared_step, own_step], labels={RUN_LABEL: run})
    own_layer = client.images.get(graded).attrs["Parent"]
    try:
        remove_labelled(client, run)  # the run's end: its image goes, its layers stay as build cache
        assert not exists(client, graded) and exists(client, own_layer)
        assert client.images.get(own_layer).tags == [f"{LAYERS}:{run}-0"]

        leftovers()
        assert "build cache of finished grading runs" in capsys.readouterr().out

        remove_labelled(client, run)  # what `labkit clean` does for each finished run
        assert not exists(client, own_layer)
        assert exists(client, keeper), "a layer another image uses must stay"
    finally:
        remove_tags(client, keeper, f"{LAYERS}:{run}-0")


def test_clean_leaves_another_tag_of_a_cached_layer_alone(client):
    """An honest `docker build -t app` that the cache answers with a kept layer gets that very image."""
    token = secrets.token_hex(4)
    run, alias = f"999999999-{token}", f"labkit-test-alias:{token}"
    graded = build(client, [f"RUN echo own-{token} > /own"], labels={RUN_LABEL: run})
    own_layer = client.images.get(graded).attrs["Parent"]
    try:
        remove_labelled(client, run)
        client.api.tag(own_layer, alias)
        remove_labelled(client, run)
        assert client.images.get(own_layer).tags == [alias]
    finally:
        remove_tags(client, alias, f"{LAYERS}:{run}-0")


@pytest.mark.parametrize("order", ["newest first", "oldest first"])
def test_an_image_built_from_another_of_the_run_leaves_no_labelled_layer(client, monkeypatch, capsys, order):
    """Lab 04 builds its retrained image FROM the graded one, so its parents inherit the run's label.
    Once the run has ended, no image of it may be left listed (clean --check says "left behind"),
    whichever order the engine lists them in; `labkit clean` then removes the rest."""
    from labkit import resources

    token = secrets.token_hex(4)
    run, tag = f"999999999-{token}", f"labkit-test-first:{token}"
    first = build(client, [f"RUN echo first-{token} > /first"], labels={RUN_LABEL: run}, tag=tag)
    second, _ = client.images.build(fileobj=io.BytesIO(f"FROM {first}\nRUN echo second > /second\n".encode()),
                                    labels={RUN_LABEL: run}, rm=True, forcerm=True)
    listed = resources.find_owned
    monkeypatch.setattr(resources, "find_owned", lambda c, r: {**(owned := listed(c, r)), "image": sorted(
        owned["image"], key=lambda i: i.attrs["Created"], reverse=order == "newest first")})
    try:
        remove_labelled(client, run)  # the run's end
        assert not exists(client, second.id)
        assert client.images.list(filters={"label": f"{RUN_LABEL}={run}"}) == []
        leftovers()
        assert not [line for line in capsys.readouterr().out.splitlines() if "left behind" in line and run in line]

        remove_labelled(client, run)  # `labkit clean`
        assert not exists(client, first)
    finally:
        for image in client.images.list(all=True, filters={"label": f"{RUN_LABEL}={run}"}):
            client.images.remove(image.id, force=True)


def test_a_free_port_is_bindable_and_outside_the_ephemeral_range():
    """free_port() gives a port nothing listens on, below the OS's ephemeral ports (an outgoing
    connection cannot take it between a stack's `down` and `up`)."""
    ports = {free_port() for _ in range(20)}
    assert all(port in PORT_RANGE and port < 32768 for port in ports)
    assert len(ports) > 1  # random, not the same one for every caller
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", ports.pop()))


def test_a_run_is_finished_when_its_process_is_gone_or_its_pid_names_another_process():
    import os

    assert not finished(new_run_id()), "this process is running"
    assert not finished(f"bench-{new_run_id()}-test-03-swarm-stack-1"), "a prefix and a suffix, as in names"
    assert finished(f"999999999-s1-{secrets.token_hex(3)}"), "no such process"
    if process_start(os.getpid()) is None:
        pytest.skip("no /proc here: a reused pid cannot be told")
    # pid 1 lives, but started before this process: an id naming pid 1 with our start is another process.
    assert finished(f"1-s{base36(process_start(os.getpid()))}-{secrets.token_hex(3)}")
    assert not finished(f"1-s{base36(process_start(1))}-{secrets.token_hex(3)}")
    assert not finished(f"{os.getpid()}-{secrets.token_hex(3)}"), "an id without a start time: the pid decides"
