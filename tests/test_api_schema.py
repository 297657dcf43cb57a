"""The services' schemas (pydantic) and the validation the services run agree, payload for payload.

Lab 05 validates with its schema (model.validation_error calls TaskRequest); lab 04 validates by hand
(validation_error in app.py, the lesson) and only describes itself with PredictRequest: here both are
held to the same verdicts on hand-picked edge cases and on payloads hypothesis generates.
"""
from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

SOLUTIONS = Path(__file__).resolve().parent.parent / "solutions"


def import_from(folder: Path, name: str):
    """Import module `name` of a lab folder, then forget the folder (labs reuse module names)."""
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def lab04():
    app = import_from(SOLUTIONS / "04-flask-serving", "service.app")
    yield app, import_from(SOLUTIONS / "04-flask-serving", "service.schema")
    for name in [n for n in sys.modules if n == "service" or n.startswith("service.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def lab05():
    model = import_from(SOLUTIONS / "05-celery", "model")
    yield model
    for name in ("model", "schema"):
        sys.modules.pop(name, None)


ROW = [5.1, 3.5, 1.4, 0.2]
EDGES = [
    {"data": [ROW]}, {"data": [ROW, [1, 2, 3, 4]]}, {"data": [ROW], "other": 1}, None, [], [ROW], "data", {},
    {"rows": [ROW]}, {"data": []}, {"data": "x"}, {"data": {"0": ROW}}, {"data": [ROW[:3]]}, {"data": [ROW + [1]]},
    {"data": [[True, 3.5, 1.4, 0.2]]}, {"data": [["5.1", 3.5, 1.4, 0.2]]}, {"data": [[None, 3.5, 1.4, 0.2]]},
    {"data": [[math.nan, 3.5, 1.4, 0.2]]}, {"data": [[math.inf, 3.5, 1.4, 0.2]]}, {"data": [[10**400, 1, 1, 1]]},
    {"data": [[10**30, 1, 1, 1]]}, {"data": [[[5.1], 3.5, 1.4, 0.2]]}, {"data": [ROW, "row"]},
]
numbers = st.one_of(st.floats(), st.integers(min_value=-10**400, max_value=10**400), st.booleans(),
                    st.text(max_size=3), st.none())
rows = st.one_of(st.lists(numbers, min_size=3, max_size=5), numbers)
payloads = st.one_of(st.fixed_dictionaries({"data": st.lists(rows, max_size=4)}),
                     st.fixed_dictionaries({"data": st.lists(st.lists(st.floats(), min_size=4, max_size=4),
                                                             max_size=3)}),
                     st.dictionaries(st.text(max_size=5), numbers, max_size=2), numbers)


def schema_accepts(model, payload) -> bool:
    try:
        model.model_validate(payload)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("payload", EDGES, ids=lambda p: str(p)[:40])
def test_lab04_hand_validation_and_its_schema_agree_on_the_edge_cases(lab04, payload):
    app, schema = lab04
    assert (app.validation_error(payload, 10**6) is None) == schema_accepts(schema.PredictRequest, payload)


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_lab04_hand_validation_and_its_schema_agree_on_generated_payloads(lab04, payload):
    app, schema = lab04
    assert (app.validation_error(payload, 10**6) is None) == schema_accepts(schema.PredictRequest, payload)


@pytest.mark.parametrize("payload, message", [
    ({"data": [ROW]}, None),
    ({"data": [ROW] * 1001}, None),  # too many rows: the API answers 413 itself
    ({"data": [ROW], "delay": 30}, None),
    (None, 'expected a JSON object with a "data" key'),
    ({"rows": [ROW]}, 'expected a JSON object with a "data" key'),
    ({"data": []}, '"data" must be a non-empty list of rows'),
    ({"data": "x"}, '"data" must be a non-empty list of rows'),
    ({"data": [ROW, [True, 1, 1, 1]]}, "row 1 must be a list of 4 finite numbers"),
    ({"data": [[math.nan, 1, 1, 1]]}, "row 0 must be a list of 4 finite numbers"),
    ({"data": [ROW[:3]]}, "row 0 must be a list of 4 finite numbers"),
    ({"data": [ROW], "delay": 31}, '"delay" must be a number of seconds between 0 and 30'),
    ({"data": [ROW], "delay": "1"}, '"delay" must be a number of seconds between 0 and 30'),
])
def test_lab05_validates_with_its_schema_and_says_what_is_wrong(lab05, payload, message):
    assert lab05.validation_error(payload) == message


def test_each_service_describes_its_request_with_the_model_that_validates_it(lab04, lab05):
    _, schema04 = lab04
    predict = schema04.description(max_rows=7)["components"]["schemas"]["PredictRequest"]
    assert predict["properties"]["data"]["maxItems"] == 7 and predict["properties"]["data"]["minItems"] == 1
    tasks = lab05.TaskRequest.model_json_schema()
    described = sys.modules["schema"].description()["components"]["schemas"]["TaskRequest"]
    assert described == tasks and tasks["properties"]["delay"]["maximum"] == 30
