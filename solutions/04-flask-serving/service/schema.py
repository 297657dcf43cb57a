"""The service's contract as pydantic models, and its OpenAPI description made from them (given).

The service validates by hand (validation_error in app.py: writing it is this lab's lesson). This
module says the same rules once more, declaratively: PredictRequest.model_validate(payload) accepts
exactly what validation_error accepts (tests/test_api_schema.py holds them to it), and GET /openapi.json
serves description(), whose schemas pydantic writes from these models, so the document cannot drift
from the rules. pydantic's JSON Schema is the dialect of OpenAPI 3.1, used as is.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

# strict: a JSON number only (not true/false, not "5.1"); NaN and Infinity are not finite numbers.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Row = Annotated[list[Number], Field(min_length=4, max_length=4, description="4 measurements, cm")]


class PredictRequest(BaseModel):
    """Rows to classify. More than MAX_ROWS rows is 413 (too large), not 400: description() adds that limit."""
    data: list[Row] = Field(min_length=1)


class PredictResult(BaseModel):
    result: list[int] = Field(description="one class id (0, 1 or 2) per row")


class Error(BaseModel):
    error: str


def json_body(model: type[BaseModel] | None, description: str) -> dict:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"} if model else {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def description(max_rows: int = 1000) -> dict:
    """The OpenAPI 3.1 description of this service, with its row limit."""
    error = json_body(Error, "an error, explained")
    schemas = {model.__name__: model.model_json_schema(ref_template="#/components/schemas/{model}")
               for model in (PredictRequest, PredictResult, Error)}
    schemas["PredictRequest"]["properties"]["data"]["maxItems"] = max_rows
    return {
        "openapi": "3.1.0",
        "info": {"title": "Iris predictions, synchronous (Flask)", "version": "1.0.0"},
        "paths": {
            "/predict": {"post": {
                "summary": "Predict iris classes now", "operationId": "predict",
                "requestBody": {"required": True, **json_body(PredictRequest, "the rows to classify")},
                "responses": {"200": json_body(PredictResult, "the classes"), "400": error,
                              "413": json_body(Error, "the body is over 1 MiB, or more rows than the limit"),
                              "415": json_body(Error, "the body is not declared as application/json")}}},
            "/health": {"get": {
                "summary": "200 when the service can serve", "operationId": "health",
                "responses": {"200": json_body(None, "healthy: the model is loaded")}}},
        },
        "components": {"schemas": schemas},
    }
