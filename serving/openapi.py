"""The OpenAPI document (`GET /docs.json`) as the service really answers: clients are generated from it.

    python -m serving.openapi            # prints the corrected document (no model needed)

BentoML 1.4 generates the document (`_bentoml_sdk/service/openapi.py`) and offers no hook to
change it, so `serving.security.Gatekeeper` serves `/docs.json` itself: it asks BentoML for its
document once, passes it through `truthful()` and answers every later request from the result.
What `truthful()` corrects, each checked against a real server by
tests/serving/test_openapi_contract.py (requests valid and invalid, every answer validated):

- `openapi` is 3.1.0: the schemas are pydantic's JSON Schema 2020-12 (`{"type": "null"}`), which
  a 3.0 document cannot hold.
- Fields that can be null are nullable. BentoML flattens a response model's `Optional[X]` to
  plain `X` (`/chat`'s `detected_at_turn`, `riskiest_turn`, `risk`, ...); a property whose
  default is null gets its null back.
- A 400 body is `{"error": str, "detail": [{"type", "loc", "msg", ...}]}` (pydantic's errors),
  not a string `detail`.
- The answers of the gate (serving/security.py) and of overload: 401 (API key), 403 (`/admin/*`
  while no key is configured), 413 (body limit), 415 (not JSON), 400 (bad Content-Length) and
  503 (overloaded `/classify` and `/chat`, not-ready `/readyz`), each with its media type and body.
- `/docs.json` itself is declared; the probes and `/metrics` answer text/plain; `/admin/reload-policy` answers 422 on an invalid file; `/admin/reload-model` 409 when no alias is followed and 422 when the new model failed to load.
- BentoML's schemas for task routes and its string-`detail` errors, which this service never sends, are left out.

A method that a path does not declare (GET /classify, DELETE /info) gets 405 with an `Allow`
header and the `Error` body: `x-fanzha-undeclared-method` in the document says so.
"""
from __future__ import annotations

import copy
import json
import sys

ERROR = {"type": "object", "title": "Error", "required": ["error"], "additionalProperties": False,
         "properties": {"error": {"type": "string", "description": "what went wrong, in one line"}},
         "description": "An error answered before the request reached the service (serving/security.py), "
                        "or an overload"}
VALIDATION_ERROR = {
    "type": "object", "title": "ValidationError", "required": ["error", "detail"],
    "description": "The request body did not match the request schema: one entry per problem",
    "properties": {
        "error": {"type": "string", "description": "e.g. '1 validation error for Input'"},
        "detail": {"type": "array", "items": {
            "type": "object", "required": ["type", "loc", "msg"],
            "properties": {
                "type": {"type": "string", "description": "pydantic error type, e.g. too_short, invalid_item"},
                "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "description": "where: field names and item positions, e.g. [\"texts\", 0]"},
                "msg": {"type": "string"},
                "url": {"type": "string"},
            }}},
    }}
REJECTED = {"type": "object", "title": "PolicyRejected", "required": ["error", "reloaded"],
            "properties": {"error": {"type": "string"}, "reloaded": {"type": "boolean", "const": False}}}

REF = "#/components/schemas/{}"
UNDECLARED = ("A method a path does not declare is answered 405, with an `Allow` header listing the "
              "declared methods and an `Error` body.")
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_GATE = {
    "401": "missing or invalid API key: send `Authorization: Bearer <key>` (when the service runs with FANZHA_API_KEY)",
    "413": "request body larger than FANZHA_MAX_BODY_BYTES",
    "415": "request body is not JSON (Content-Type must be application/json)",
}
_DROP = ("TaskStatusResponse", "InvalidArgument", "NotFound", "InternalServerError")


def _json(ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF.format(ref)}}}}


def _allows_null(schema: dict) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []) if isinstance(s, dict))


def _nullable(schema: dict) -> dict:
    """Make a schema whose default is null accept null (BentoML dropped the `| None`)."""
    if _allows_null(schema):
        return schema
    if isinstance(schema.get("type"), str) and "$ref" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    meta = {k: schema[k] for k in ("default", "description", "title") if k in schema}
    inner = {k: v for k, v in schema.items() if k not in meta}
    return {**meta, "anyOf": [inner, {"type": "null"}]}


def _restore_nulls(node):
    if isinstance(node, dict):
        node = {k: _restore_nulls(v) for k, v in node.items()}
        props = node.get("properties")
        if isinstance(props, dict):
            node["properties"] = {k: _nullable(v) if isinstance(v, dict) and "default" in v and v["default"] is None
                                  else v for k, v in props.items()}
        return node
    if isinstance(node, list):
        return [_restore_nulls(v) for v in node]
    return node


def truthful(document: dict) -> dict:
    """BentoML's document, corrected to what the service answers (see the module docstring)."""
    doc = _restore_nulls(json.loads(json.dumps(document)))  # a copy, with string status codes
    doc["openapi"] = "3.1.0"
    doc["info"]["description"] = (doc["info"].get("description") or "") + "\n\n" + UNDECLARED
    doc["x-fanzha-undeclared-method"] = {"status": 405, "header": "Allow", "schema": {"$ref": REF.format("Error")}}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in _DROP:
        schemas.pop(name, None)
    schemas.update(Error=ERROR, ValidationError=VALIDATION_ERROR, PolicyRejected=REJECTED)
    paths = doc["paths"]
    paths.setdefault("/docs.json", {"get": {
        "tags": ["Infrastructure"], "description": "This OpenAPI document.",
        "responses": {"200": {"description": "Successful Response",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}})
    for path, item in paths.items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            if path in ("/healthz", "/livez", "/readyz", "/metrics"):
                responses["200"] = {"description": "Successful Response", "content": copy.deepcopy(_TEXT)}
                if path in ("/readyz", "/livez"):
                    responses["503"] = {"description": "not ready (model loading) or not alive",
                                        "content": copy.deepcopy(_TEXT)}
            responses["401"] = _json("Error", _GATE["401"])
            if path.startswith("/admin/"):
                responses["403"] = _json("Error", "admin endpoints are disabled: the service runs without FANZHA_API_KEY")
            if method in ("post", "put", "patch"):
                responses["400"] = ({"description": "the body is not valid JSON, does not match the request "
                                                    "schema, or has an invalid Content-Length",
                                     "content": {"application/json": {"schema": {"anyOf": [
                                         {"$ref": REF.format("ValidationError")}, {"$ref": REF.format("Error")}]}}}}
                                    if "x-bentoml-name" in op else _json("Error", "invalid Content-Length header"))
                responses["413"] = _json("Error", _GATE["413"])
                responses["415"] = _json("Error", _GATE["415"])
            if "x-bentoml-name" in op:
                responses.pop("404", None)
                responses["500"] = _json("Error", "unexpected failure (details in the server log)")
                responses["503"] = _json("Error", "overloaded: too many messages waiting; retry later")
            if path == "/admin/reload-policy":
                responses["422"] = _json("PolicyRejected", "the policy file is invalid; nothing changed")
                responses["200"]["content"]["application/json"]["schema"] = {
                    "type": "object", "required": ["reloaded", "policy", "source"],
                    "properties": {"reloaded": {"type": "boolean", "const": True}, "policy": {"type": "object"},
                                   "source": {"type": "string"}}}
            if path == "/admin/reload-model":
                swap = {"type": "object", "required": ["result"],
                        "properties": {"result": {"type": "string", "enum": ["ok", "unchanged", "failed", "not-following"]},
                                       "tag": {"type": ["string", "null"]}, "from": {"type": ["string", "null"]},
                                       "seconds": {"type": "number"}, "error": {"type": "string"}}}
                responses["200"]["content"]["application/json"]["schema"] = copy.deepcopy(swap)
                responses["409"] = {"description": "the service serves a fixed model, not an alias",
                                    "content": {"application/json": {"schema": copy.deepcopy(swap)}}}
                responses["422"] = {"description": "the alias's new holder failed to load; the old model keeps serving",
                                    "content": {"application/json": {"schema": copy.deepcopy(swap)}}}
            op["responses"] = dict(sorted(responses.items()))
    return doc


def allowed_methods(document: dict) -> dict[str, set[str]]:
    """Path -> the HTTP methods the document declares for it (HEAD wherever GET is declared)."""
    out = {}
    for path, item in document.get("paths", {}).items():
        methods = {m.upper() for m in item if m in ("get", "post", "put", "patch", "delete")}
        if "GET" in methods:
            methods.add("HEAD")
        out[path] = methods
    return out


def main(argv=None) -> int:
    from serving.service import Fanzha

    print(json.dumps(truthful(Fanzha.openapi_spec.asdict()), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
