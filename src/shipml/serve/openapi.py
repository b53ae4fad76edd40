"""The server's OpenAPI 3.0 document, derived from the served model's signature."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipml.serve.app import App

JSON_TYPES = {
    "double": "number",
    "float": "number",
    "long": "integer",
    "integer": "integer",
    "boolean": "boolean",
    "string": "string",
}
ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string", "nullable": True},
            },
            "required": ["code", "message"],
        }
    },
}
ERRORS = {
    str(status): {"description": text, "content": {"application/json": {"schema": ERROR}}}
    for status, text in [
        (400, "malformed request"),
        (413, "body or batch too large"),
        (415, "not JSON"),
        (422, "invalid input: the code and field say what and where"),
        (503, "not ready or overloaded; retry after Retry-After seconds"),
        (504, "no answer in time"),
    ]
}


def document(app: App) -> dict[str, Any]:
    variant = next((v for v in app.routing.variants.values() if not v.shadow), None)
    columns = variant.model.schema.columns if variant else ()
    name = variant.model.name if variant else "model"
    row = {
        "type": "object",
        "properties": {c.name: {"type": JSON_TYPES[c.type], "nullable": True} for c in columns},
        "required": [c.name for c in columns if c.required],
    }
    invocations = {
        "oneOf": [
            {
                "type": "object",
                "required": ["dataframe_split"],
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "required": ["columns", "data"],
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": {"type": "array", "items": {}}},
                        },
                    }
                },
            },
            {
                "type": "object",
                "required": ["dataframe_records"],
                "properties": {"dataframe_records": {"type": "array", "items": row}},
            },
            {
                "type": "object",
                "required": ["instances"],
                "properties": {"instances": {"type": "array", "items": row}},
            },
            {
                "type": "object",
                "required": ["inputs"],
                "properties": {"inputs": {"type": "object"}},
            },
        ]
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", **({"enum": [c.name for c in columns]} if columns else {})},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {
                "type": "string",
                "enum": ["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"],
            },
            "data": {"type": "array", "items": {}},
        },
    }
    v2_request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor},
        },
    }
    ok = {
        "description": "probabilities of the positive label",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    simple = {
        "200": {
            "description": "ok",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"shipml inference server: {name}", "version": "1"},
        "paths": {
            "/invocations": {
                "post": {
                    "summary": "Predict (MLflow scoring formats)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": invocations}},
                    },
                    "responses": {"200": ok, **ERRORS},
                }
            },
            f"/v2/models/{name}/infer": {
                "post": {
                    "summary": "Predict (Open Inference Protocol v2)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": v2_request}},
                    },
                    "responses": {"200": ok, **ERRORS},
                }
            },
            f"/v2/models/{name}": {"get": {"summary": "Model metadata", "responses": simple}},
            "/v2/health/live": {"get": {"summary": "Liveness", "responses": simple}},
            "/v2/health/ready": {
                "get": {"summary": "Readiness", "responses": {**simple, "503": ERRORS["503"]}}
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": simple}},
            "/readyz": {
                "get": {"summary": "Readiness", "responses": {**simple, "503": ERRORS["503"]}}
            },
        },
    }
