"""The OpenAPI document (`GET /docs.json`) against a real server: every answer to valid and invalid
requests — status, content type and body — is one the document declares (openapi-core validates)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.serving.conftest import start_server, stop_server

pytestmark = pytest.mark.slow
KEY = "contract-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY_LIMIT = 4096


@dataclass
class _Request:  # openapi_core.protocols.Request over an httpx request
    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=lambda: RequestParameters(
        query=ImmutableMultiDict(), header=Headers(), cookie=ImmutableMultiDict()))


@dataclass
class _Response:  # openapi_core.protocols.Response over an httpx response
    status_code: int
    content_type: str
    headers: Headers
    data: bytes


def _adapt(base: str, r: httpx.Response) -> tuple[_Request, _Response]:
    req = r.request
    try:
        body = req.content or None
    except httpx.RequestNotRead:  # a streamed (chunked) body
        body = None
    request = _Request(base, req.url.path, req.method.lower(), body,
                       req.headers.get("content-type", "application/json").lower(),
                       RequestParameters(query=ImmutableMultiDict(), header=Headers(list(req.headers.items())),
                                         cookie=ImmutableMultiDict()))
    response = _Response(r.status_code, r.headers.get("content-type", "").lower(), Headers(list(r.headers.items())),
                         r.content)
    return request, response


@pytest.fixture(scope="module")
def keyed(tiny_serving):
    """A server with an API key, a small body limit and a queue limit of one message."""
    proc, base = start_server(tiny_serving, {"FANZHA_API_KEY": KEY, "FANZHA_MAX_BODY_BYTES": str(BODY_LIMIT),
                                             "FANZHA_MAX_QUEUE": "1"})
    doc = httpx.get(base + "/docs.json", headers=AUTH, timeout=30)
    assert doc.status_code == 200 and doc.headers["content-type"].startswith("application/json")
    spec = doc.json()
    yield base, spec
    stop_server(proc)


def _openapi(base: str, spec: dict) -> OpenAPI:
    return OpenAPI.from_dict({**spec, "servers": [{"url": base}]})  # the document names its server "."


def check(openapi: OpenAPI, base: str, r: httpx.Response, valid_request: bool = False) -> httpx.Response:
    """Fail unless the response's status, content type and body are declared for its operation."""
    request, response = _adapt(base, r)
    if valid_request:
        openapi.validate_request(request)
    openapi.validate_response(request, response)
    return r


def test_the_document_is_valid_openapi_and_declares_every_answer(keyed):
    base, spec = keyed
    validate_spec(spec)
    assert spec["openapi"].startswith("3.1")
    for path, status in [("/classify", "400"), ("/chat", "400")]:
        schema = spec["paths"][path]["post"]["responses"][status]["content"]["application/json"]["schema"]
        assert "ValidationError" in json.dumps(schema)
    detail = spec["components"]["schemas"]["ValidationError"]["properties"]["detail"]
    assert detail["type"] == "array", "400 detail is a list of problems"
    for path in ("/classify", "/chat"):
        assert {"200", "400", "401", "413", "415", "503"} <= set(spec["paths"][path]["post"]["responses"])
    assert "403" in spec["paths"]["/admin/reload-policy"]["post"]["responses"]
    chat = spec["paths"]["/chat"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    for name in ("detected_at_turn", "riskiest_turn", "risk", "label", "action"):
        assert "null" in json.dumps(chat["properties"][name]), f"/chat {name} can be null"
    result = spec["components"]["schemas"]["Result"]["properties"]
    for name in ("label", "category", "score", "fraud_score", "spam_score", "action"):
        assert "null" in json.dumps(result[name]), f"/classify {name} is null for an item with an error"


def test_valid_requests(keyed):
    base, spec = keyed
    openapi = _openapi(base, spec)
    r = check(openapi, base, httpx.post(base + "/classify", headers=AUTH, timeout=30,
                                        json={"texts": ["您的验证码是123456", {"text": "账户异常请点链接", "sender": 95588}, ""]}),
              valid_request=True)
    assert r.status_code == 200
    results = r.json()
    assert results[2]["error"] and results[2]["label"] is None and results[2]["action"] is None
    r = check(openapi, base, httpx.post(base + "/chat", headers=AUTH, timeout=30,
                                        json={"turns": [{"speaker": "a", "text": "你好"}, {"speaker": 2, "text": "在吗"}]}),
              valid_request=True)
    assert r.status_code == 200
    body = r.json()
    assert body["action"] != "block" and body["detected_at_turn"] is None, "a null the document must allow"
    for path in ("/info", "/healthz", "/livez", "/readyz", "/metrics", "/docs.json"):
        assert check(openapi, base, httpx.get(base + path, headers=AUTH, timeout=30), valid_request=True).status_code == 200
    assert check(openapi, base, httpx.post(base + "/admin/reload-policy", headers=AUTH, timeout=30)).status_code == 200


@pytest.mark.parametrize("name, kwargs, status", [
    ("empty list", {"json": {"texts": []}}, 400),
    ("a number item", {"json": {"texts": [3]}}, 400),
    ("a string for the list", {"json": {"texts": "abc"}}, 400),
    ("an unknown field", {"json": {"texts": [{"text": "a", "extra": 1}]}}, 400),
    ("no texts", {"json": {"text": "a"}}, 400),
    ("a JSON array body", {"json": ["a"]}, 400),
    ("a JSON null body", {"content": b"null"}, 400),
    ("an empty body", {"content": b""}, 400),
    ("not JSON", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("a form", {"data": {"texts": "a"}}, 415),
    ("text/plain", {"content": "你好".encode(), "headers": {"content-type": "text/plain"}}, 415),
    ("oversized", {"json": {"texts": ["很长" * BODY_LIMIT]}}, 413),
    ("oversized, chunked", {"chunks": [b'{"texts": ["', b"x" * 2 * BODY_LIMIT, b'"]}']}, 413),
])
@pytest.mark.parametrize("path", ["/classify", "/chat"])
def test_invalid_requests(keyed, path, name, kwargs, status):
    base, spec = keyed
    openapi = _openapi(base, spec)
    kwargs = dict(kwargs)  # the parameters are shared by both paths
    headers = {**AUTH, **kwargs.pop("headers", {})}
    if "chunks" in kwargs:  # no Content-Length: sent chunked
        kwargs["content"] = iter(kwargs.pop("chunks"))
    if path == "/chat" and isinstance(kwargs.get("json"), dict) and "texts" in kwargs["json"]:
        kwargs["json"] = {"turns": kwargs["json"]["texts"]}
    r = httpx.post(base + path, headers=headers, timeout=30, **kwargs)
    assert r.status_code == status, (name, r.text)
    check(openapi, base, r)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_missing_or_wrong_key(keyed, headers):
    base, spec = keyed
    openapi = _openapi(base, spec)
    for method, path, body in [("POST", "/classify", {"texts": ["a"]}), ("POST", "/chat", {"turns": [{"text": "a"}]}),
                               ("GET", "/info", None), ("GET", "/docs.json", None), ("GET", "/metrics", None),
                               ("POST", "/admin/reload-policy", None)]:
        r = httpx.request(method, base + path, headers=headers, json=body, timeout=30)
        assert r.status_code == 401, (path, r.text)
        check(openapi, base, r)


def test_undeclared_methods_get_405(keyed):
    base, spec = keyed
    openapi = _openapi(base, spec)
    error = OAS31Validator(spec["components"]["schemas"]["Error"])
    for method, path in [("GET", "/classify"), ("DELETE", "/info"), ("PUT", "/chat"), ("POST", "/info"),
                         ("GET", "/admin/reload-policy"), ("PATCH", "/healthz")]:
        r = httpx.request(method, base + path, headers=AUTH, timeout=30)
        assert r.status_code == 405, (method, path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        error.validate(r.json())
        declared = {m.upper() for m in spec["paths"][path]}
        assert declared <= set(r.headers["allow"].replace(" ", "").split(","))
        with pytest.raises(OperationNotFound):  # and the document does not declare it
            check(openapi, base, r)
    assert spec["x-fanzha-undeclared-method"]["status"] == 405


def test_overload_answers_503_as_declared(keyed):
    base, spec = keyed
    openapi = _openapi(base, spec)

    def one(i):
        texts = [f"第{i}条：您的快递已到驿站，取件码{i}"] * (64 if i == 0 else 1)
        return httpx.post(base + "/classify", headers=AUTH, json={"texts": texts}, timeout=60)

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(one, range(48)))
    assert {r.status_code for r in answers} <= {200, 503}
    assert any(r.status_code == 503 for r in answers), "FANZHA_MAX_QUEUE=1 under a burst must refuse some"
    for r in answers:
        check(openapi, base, r)


def test_admin_without_a_key_is_403(server):
    spec = httpx.get(server + "/docs.json", timeout=30).json()
    r = httpx.post(server + "/admin/reload-policy", timeout=30)
    assert r.status_code == 403
    check(_openapi(server, spec), server, r)
