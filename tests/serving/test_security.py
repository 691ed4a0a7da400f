"""The request gate (auth, body limit, content type) on a real Starlette app, and log redaction."""
import asyncio
import logging

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.api_models import Item
from serving.security import Gatekeeper, GateSettings, redact_validation_logs


async def _echo(request):
    return JSONResponse({"bytes": len(await request.body())})


def _app(**settings):
    routes = [Route(p, _echo, methods=["GET", "POST"]) for p in ("/classify", "/healthz", "/readyz", "/metrics", "/admin/reload-policy", "/info")]
    return Gatekeeper(Starlette(routes=routes), GateSettings(**settings))


def _call(app, method, path, **kw):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.request(method, path, **kw)
    return asyncio.run(go())


KEY = {"Authorization": "Bearer s3cret"}


def test_without_a_key_everything_is_open_but_admin():
    app = _app()
    assert _call(app, "POST", "/classify", json={"texts": ["a"]}).status_code == 200
    assert _call(app, "GET", "/metrics").status_code == 200
    admin = _call(app, "POST", "/admin/reload-policy")
    assert admin.status_code == 403 and "FANZHA_API_KEY" in admin.json()["error"]


def test_with_a_key():
    app = _app(api_key="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}, {"Authorization": "Bearer s3cret "}):
        r = _call(app, "POST", "/classify", json={"texts": ["a"]}, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "API key" in r.json()["error"]
    assert _call(app, "POST", "/classify", json={"texts": ["a"]}, headers=KEY).status_code == 200
    assert _call(app, "GET", "/info").status_code == 401
    assert _call(app, "GET", "/healthz").status_code == 200 and _call(app, "GET", "/readyz").status_code == 200
    assert _call(app, "GET", "/metrics").status_code == 401 and _call(app, "GET", "/metrics", headers=KEY).status_code == 200
    assert _call(app, "POST", "/admin/reload-policy", headers=KEY).status_code == 200


def test_probe_and_metrics_auth_are_configurable():
    app = _app(api_key="s3cret", auth_health=True, auth_metrics=False)
    assert _call(app, "GET", "/healthz").status_code == 401
    assert _call(app, "GET", "/metrics").status_code == 200


def test_body_limit_with_and_without_content_length():
    app = _app(max_body_bytes=1000)
    assert _call(app, "POST", "/classify", content=b"x" * 1000, headers={"content-type": "application/json"}).json() == {"bytes": 1000}
    big = _call(app, "POST", "/classify", content=b"x" * 1001, headers={"content-type": "application/json"})
    assert big.status_code == 413 and "1001 bytes exceeds the limit of 1000" in big.json()["error"]

    async def chunks(n):  # no Content-Length: sent chunked
        for _ in range(n):
            yield b"y" * 100
    assert _call(app, "POST", "/classify", content=chunks(10), headers={"content-type": "application/json"}).json() == {"bytes": 1000}
    chunked = _call(app, "POST", "/classify", content=chunks(11), headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and chunked.json()["error"] == "request body exceeds the limit of 1000 bytes"


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
                                          "application/vnd.bentoml+pickle"])
def test_only_json_bodies(content_type):
    r = _call(_app(), "POST", "/classify", content=b"texts=a", headers={"content-type": content_type})
    assert r.status_code == 415 and "must be JSON" in r.json()["error"]
    assert _call(_app(), "POST", "/classify", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}).status_code == 200


def test_validation_errors_are_logged_without_the_input(caplog):
    redact_validation_logs()
    logger = logging.getLogger("bentoml._internal.server.http_app")
    secret = "您的验证码 482913 请勿告诉他人"
    try:
        TypeAdapter(list[Item]).validate_python([secret, {"text": 5, "note": secret}])
    except ValidationError as e:
        error = e
    assert secret in str(error), "pydantic itself would print it"
    with caplog.at_level(logging.INFO, logger=logger.name):
        try:
            raise error
        except ValidationError:
            logger.error("Exception on %s [%s]", "/classify", "POST", exc_info=True)
    record = caplog.records[-1]
    assert secret not in caplog.text and "482913" not in caplog.text
    assert record.levelname == "WARNING" and "1.message.text" in record.getMessage()
