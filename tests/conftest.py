"""Fixtures shared by the graded tests and the project's own tests."""
from __future__ import annotations

import pytest

from labkit.grading import record_notes, resolve_target
from labkit.resources import new_run_id, remove_labelled, unique_name
from labkit.submission import Rejected, assemble
from labkit.testing import Feedback


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this pytest run; every Docker object it creates carries it."""
    return new_run_id()


@pytest.fixture(scope="session")
def docker_client(run_id):
    """A Docker client; at the end of the run everything labelled with this run is removed."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure here means "no engine"
        pytest.exit(f"no Docker engine answers ({error}); run 'make setup' or 'labkit doctor'", returncode=3)
    yield client
    remove_labelled(client, run_id)
    client.close()


@pytest.fixture(scope="session")
def target_root(pytestconfig):
    """The tree being graded: exercises/, solutions/ or a submission folder."""
    return resolve_target(pytestconfig.getoption("--target"))


@pytest.fixture(scope="module")
def lab_dir(request, target_root, tmp_path_factory):
    """The tree to grade for this module's lab: the course's given files plus the submission's own
    files (labkit.submission), in a temporary folder of this module; a rejected submission fails
    every test of the lab with the reason."""
    lab = request.node.get_closest_marker("lab").args[0]
    folder = target_root / lab
    if not folder.is_dir():
        raise Feedback(f"expected a folder {lab}/ in {target_root}; there is none")
    try:
        assembled = assemble(lab, folder, tmp_path_factory.mktemp("graded") / lab)
    except Rejected as reason:
        raise Feedback(f"the submission was not graded: {reason}") from None
    record_notes(request.config, lab, assembled.notes())
    return assembled.root


@pytest.fixture(scope="module")
def name(run_id, request):
    """Makes Docker names unique to this run and this test module."""
    module = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    return lambda *parts: unique_name(run_id, module, *parts)
