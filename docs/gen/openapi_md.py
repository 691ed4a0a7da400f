"""The service's OpenAPI document as Markdown: endpoints, request and response schemas, status codes.

    .venv/bin/python docs/gen/openapi_md.py > /tmp/api.md      # what the API reference page shows

The document comes from `python -m serving.openapi` (the one `GET /docs.json` serves, no model
needed), so the reference is regenerated at every `mkdocs build` and cannot drift from the code.
Rendered as plain Markdown tables: no Swagger UI, nothing loaded from a CDN.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
METHODS = ("get", "post", "put", "patch", "delete")
CONSTRAINTS = (("minItems", "at least {} items"), ("maxItems", "at most {} items"),
               ("minLength", "at least {} characters"), ("maxLength", "at most {} characters"),
               ("minimum", ">= {}"), ("maximum", "<= {}"))


def load_document() -> dict:
    """`python -m serving.openapi` in a fresh interpreter of this virtualenv (imports BentoML, not torch)."""
    out = subprocess.run([sys.executable, "-m", "serving.openapi"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"python -m serving.openapi failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def anchor(name: str) -> str:
    return f"schema-{name}".replace("_", "-").lower()


def cell(text) -> str:
    """One table cell: no line breaks, no bare pipes."""
    return " ".join(str(text).split()).replace("|", "\\|")


def type_of(schema: dict) -> str:
    """A schema's type in a few words, with links to named schemas."""
    if not isinstance(schema, dict) or not schema:
        return "any"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{anchor(name)})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            kinds = [type_of(s) for s in schema[key]]
            nullable = "null" in kinds
            kinds = [k for k in kinds if k != "null"]
            return " or ".join(dict.fromkeys(kinds)) + (" or null" if nullable else "")
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "object" if "properties" in schema else "any")
    if isinstance(kind, list):
        return " or ".join(type_of({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    return kind


def constraints(schema: dict) -> list[str]:
    out = [text.format(schema[key]) for key, text in CONSTRAINTS if key in schema]
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []):
        if isinstance(sub, dict):
            out += constraints(sub)
    return out


def properties_table(schema: dict) -> list[str]:
    props = schema.get("properties") or {}
    if not props:
        return []
    required = set(schema.get("required", []))
    lines = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, prop in props.items():
        notes = [prop.get("description", "")] + constraints(prop)
        if "default" in prop and prop["default"] not in (None, ""):
            notes.append(f"default `{json.dumps(prop['default'], ensure_ascii=False)}`")
        text = "; ".join(n for n in notes if n)
        lines.append(f"| `{name}` | {cell(type_of(prop))} | {'yes' if name in required else 'no'} | {cell(text)} |")
    if schema.get("additionalProperties") is False:
        lines += ["", "Other fields are refused."]
    return lines


def body(schema: dict) -> list[str]:
    """A request or response body: its type, and the fields of an inline object."""
    lines = [f"Type: {type_of(schema) if '$ref' in schema or 'properties' not in schema else 'object'}"]
    if "properties" in schema and "$ref" not in schema:
        lines += [""] + properties_table(schema)
    return lines


def operation(path: str, method: str, op: dict) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    text = op.get("description") or op.get("summary") or ""
    if text:
        lines += [" ".join(text.split()), ""]
    params = op.get("parameters") or []
    if params:
        lines += ["Parameters:", "", "| name | in | type | required |", "| --- | --- | --- | --- |"]
        lines += [f"| `{p['name']}` | {p.get('in', '')} | {cell(type_of(p.get('schema', {})))} | "
                  f"{'yes' if p.get('required') else 'no'} |" for p in params]
        lines.append("")
    request = (op.get("requestBody") or {}).get("content") or {}
    for media, spec in request.items():
        lines += [f"Request body (`{media}`):", ""] + body(spec.get("schema", {})) + [""]
    lines += ["| status | meaning | body |", "| --- | --- | --- |"]
    nested = []
    for status, response in sorted(op.get("responses", {}).items()):
        content = response.get("content") or {}
        kinds = []
        for media, spec in content.items():
            schema = spec.get("schema", {})
            kinds.append(f"`{media}`: {type_of(schema) if 'properties' not in schema else 'object (below)'}")
            if "properties" in schema and "$ref" not in schema:
                nested += ["", f"Response {status} (`{media}`) fields:", ""] + properties_table(schema)
        lines.append(f"| {status} | {cell(response.get('description', ''))} | {cell('; '.join(kinds)) or '–'} |")
    return lines + nested + [""]


def render(doc: dict) -> str:
    lines = [f"OpenAPI {doc.get('openapi')} — generated from `python -m serving.openapi` when these pages were built; "
             "a running service serves the same document at `GET /docs.json`.", ""]
    extra = doc.get("x-fanzha-undeclared-method")
    if extra:
        lines += [f"A method that a path does not declare is answered {extra.get('status')}, with an "
                  f"`{extra.get('header')}` header listing the declared methods and an [Error](#{anchor('Error')}) body.", ""]
    lines += ["## Endpoints", ""]
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                lines += operation(path, method, item[method])
    lines += ["## Schemas", ""]
    for name, schema in sorted(doc.get("components", {}).get("schemas", {}).items(), key=lambda kv: kv[0].lower()):
        lines += [f"### {name} {{#{anchor(name)}}}", ""]
        if schema.get("description"):
            lines += [" ".join(schema["description"].split()), ""]
        table = properties_table(schema)
        lines += (table if table else [f"Type: {type_of(schema)}"]) + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(load_document()))
