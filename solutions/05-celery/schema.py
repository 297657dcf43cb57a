"""What the API accepts and answers, as pydantic models, and its OpenAPI description made from them
(given; do not edit).

One source: model.validation_error() validates a submission with TaskRequest, and GET /openapi.json
serves description(), whose schemas pydantic writes from the same models, so the document cannot drift
from what the API really accepts. pydantic's JSON Schema is the dialect of OpenAPI 3.1, used as is.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

MAX_ROWS = 1000
MAX_DELAY = 30.0  # seconds; `delay` simulates a slow model so a task can be caught in flight

# strict: a JSON number only (not true/false, not "5.1"); NaN and Infinity are not finite numbers.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Row = Annotated[list[Number], Field(min_length=4, max_length=4, description="4 measurements, cm")]


class TaskRequest(BaseModel):
    """A prediction to queue: rows of 4 numbers and, optionally, seconds the worker waits first."""
    # The row limit is documented here but checked by the API itself: too many rows is 413, not 400.
    data: list[Row] = Field(min_length=1, json_schema_extra={"maxItems": MAX_ROWS})
    delay: Number = Field(0, ge=0, le=MAX_DELAY)


class TaskAccepted(BaseModel):
    task_id: str


class TaskState(BaseModel):
    task_id: str
    status: str = Field(description="PENDING, STARTED, SUCCESS, FAILURE or RETRY")
    result: list[int] | None = Field(description="the class ids once SUCCESS, else null")


class Error(BaseModel):
    error: str


def json_body(model: type[BaseModel] | None, description: str) -> dict:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"} if model else {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def description() -> dict:
    """The OpenAPI 3.1 description of this API."""
    error = json_body(Error, "an error, explained")
    unavailable = json_body(Error, "the queue or the result store is unavailable; try again later")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Iris predictions, asynchronous (Celery)", "version": "1.0.0"},
        "paths": {
            "/tasks": {"post": {
                "summary": "Queue a prediction; answers a task id at once", "operationId": "submitTask",
                "requestBody": {"required": True, **json_body(TaskRequest, "the rows to classify")},
                "responses": {"202": json_body(TaskAccepted, "queued"), "400": error, "413": error,
                              "503": unavailable}}},
            "/tasks/{task_id}": {"get": {
                "summary": "The state of a queued prediction, and its result when done", "operationId": "getTask",
                "parameters": [{"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": json_body(TaskState, "the task"), "404": error, "503": unavailable}}},
            "/batch/last": {"get": {
                "summary": "The last summary of the periodic score_batch task", "operationId": "lastBatch",
                "responses": {"200": json_body(None, "rows scored and the count per class"), "404": error}}},
            "/health": {"get": {
                "summary": "200 when the result store answers", "operationId": "tasksHealth",
                "responses": {"200": json_body(None, "healthy"), "503": json_body(None, "unhealthy")}}},
        },
        "components": {"schemas": {model.__name__: model.model_json_schema(ref_template="#/components/schemas/{model}")
                                   for model in (TaskRequest, TaskAccepted, TaskState, Error)}},
    }
