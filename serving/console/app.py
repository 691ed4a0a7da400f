"""The analyst console's pages and JSON calls, served by the service itself under `/ui`.

    FANZHA_API_KEYS=alice:k1-long-random FANZHA_FEEDBACK_DB=feedback.db FANZHA_REVIEW_LOG=1 \
        fanzha serve --model artifacts/demo/serving
    # then open http://127.0.0.1:3000/ui and log in with alice's key

| page | what it does |
| --- | --- |
| `/ui` | try a message: its decision (exactly `/classify`'s) and one weight per character (`/explain`'s occlusion) |
| `/ui/queue` | flagged and blocked messages and open appeals, newest first, numbers masked, with filters; label a row or a selection (analyst feedback), block-list a domain or a phone number, export CSV |
| `/ui/campaigns` | the feedback campaigns in memory: size, first and last seen, a masked example, retire |
| `/ui/login` | exchange an API key for a session cookie (serving/console/auth.py) |

Every decision the console shows or causes goes through the engine the API uses: `explain`
(serving/explain.py) answers with the served model's `/classify` result, a label is a
`Campaigns.submit` (as `POST /feedback` with source `analyst`), and a block-list entry is an
edit of the policy file the service decides on (`PolicyFile.add_to_blocklist`), which every
worker re-reads within FANZHA_POLICY_CHECK_S. Each action is written to the store's
`console_actions` table and to the `fanzha.console` log with the time and the key's name, never
with message text.

Security: pages are Jinja templates with autoescape, the scripts fill the page with
`textContent` only, and a Content-Security-Policy allows scripts, styles and connections from
the service alone (no inline script, no CDN; the CJK font stack uses the fonts installed where the
browser runs). A POST needs the session's `X-CSRF-Token` (or a Bearer key); message text only
travels in POST bodies, never in a URL.
"""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Literal, Optional

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field

from serving.api_models import MAX_EXPLAIN_CHARS
from serving.audit import mask
from serving.console.auth import ANONYMOUS, COOKIE, Sessions, set_cookie
from serving.console.review import Filters, ReviewQueue
from serving.explain import explain
from serving.feedback.campaigns import FeedbackError
from serving.feedback.store import StoreError
from serving.policy import PolicyError, domains_in

HERE = Path(__file__).resolve().parent
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
MAX_REFS = 500
log = logging.getLogger("fanzha.console")
router = APIRouter(prefix="/ui", include_in_schema=False)
_pages = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class LoginIn(_Body):
    key: str = Field(..., min_length=1, max_length=512)


class ExplainIn(_Body):
    text: str = Field(..., min_length=1, max_length=MAX_EXPLAIN_CHARS)


class LabelIn(_Body):
    refs: list[str] = Field(..., min_length=1, max_length=MAX_REFS)
    label: str = Field(..., max_length=64, description="normal (legitimate) | spam | fraud.<type>")


class BlockIn(_Body):
    kind: Literal["domain", "phone"]
    value: str = Field(..., min_length=1, max_length=253)
    ref: Optional[str] = Field(None, max_length=32, description="the queue item it came from")


class ExportIn(_Body):
    refs: list[str] = Field(default_factory=list, max_length=MAX_REFS)
    kind: str = ""
    category: str = ""
    reason: str = Field("", max_length=100)
    since: str = Field("", max_length=32)
    status: str = "all"


class RetireIn(_Body):
    campaign: str = Field(..., min_length=1, max_length=64)


class Console:
    """What the console's handlers need from the service (one per worker)."""

    def __init__(self, sessions: Sessions, follower, feedback, policy_file, queue: ReviewQueue):
        self.sessions, self.follower, self.feedback, self.policy_file, self.queue = \
            sessions, follower, feedback, policy_file, queue

    @property
    def campaigns(self):
        return self.feedback.campaigns

    @property
    def store(self):
        return self.campaigns.store if self.campaigns is not None else None

    def record(self, who: str, action: str, item: str | None = None, **detail) -> None:
        """An analyst action: the store's console_actions table (when there is one) and the log."""
        text = json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None
        log.warning(json.dumps({"event": "console", "at": round(time.time(), 3), "key": who, "action": action,
                                "item": item, **detail}, ensure_ascii=False))
        if self.store is not None:
            try:
                self.store.add_action(who, action, item, text)
            except StoreError as e:
                log.error("console action not stored (%s); it is in this log only", e)

    def labels(self) -> list[str]:
        return list(self.follower.slot.predictor.labels)


def _console(request: Request) -> Console:
    console = getattr(request.app.state, "console", None)
    if console is None:
        raise RuntimeError("the console is not attached (serving.service attaches it)")
    return console


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _who(request: Request, console: Console, post: bool) -> tuple[str | None, JSONResponse | None]:
    """(the caller's key name, None) or (None, the error answer). A Bearer key needs no CSRF token;
    a session needs it on every POST."""
    name = request.scope.get("fanzha.caller")
    if name is not None:
        return name, None
    session = request.scope.get("fanzha.session")
    if session is None:
        return None, _error(401, "no console session: open /ui (or log in at /ui/login)")
    if post and not console.sessions.check_csrf(session, request.headers.get("x-csrf-token")):
        return None, _error(403, "missing or invalid X-CSRF-Token: reload the page")
    return session.name, None


FEEDBACK_OFF = "feedback is off: start the service with FANZHA_FEEDBACK_DB set"


def _begin(request: Request, post: bool, feedback: bool = False) -> tuple[Console, str | None, JSONResponse | None]:
    """(console, the caller's key name, None) or (console, None, the error answer): the caller
    (`_who`), and with `feedback`, a feedback store to act on."""
    console = _console(request)
    who, denied = _who(request, console, post)
    if denied is None and feedback and console.campaigns is None:
        denied = _error(503, FEEDBACK_OFF)
    return console, who, denied


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def _page(request: Request, name: str, title: str) -> Response:
    console = _console(request)
    session = request.scope.get("fanzha.session")
    cookie = None
    if session is None and request.scope.get("fanzha.caller") is None:
        if not console.sessions.open:
            return Response(status_code=303, headers={"Location": "/ui/login"})
        cookie = console.sessions.issue(ANONYMOUS)  # an open console: an anonymous session for its CSRF token
        session = console.sessions.verify(cookie)
    csrf = console.sessions.csrf(session) if session is not None else ""
    who = session.name if session is not None else request.scope.get("fanzha.caller")
    body = _pages.get_template(name).render(title=title, csrf=csrf, who=who, page=name.split(".")[0],
                                            auth=not console.sessions.open, labels=console.labels(),
                                            source=console.queue.source())
    response = HTMLResponse(body, headers=HEADERS)
    if cookie is not None:
        response.headers.append("set-cookie", set_cookie(cookie, _secure(request)))
    return response


# -- pages ------------------------------------------------------------------------------------
@router.get("")
@router.get("/")
def try_page(request: Request):
    return _page(request, "try.html", "试一条消息 · Try a message")


@router.get("/queue")
def queue_page(request: Request):
    return _page(request, "queue.html", "审核队列 · Review queue")


@router.get("/campaigns")
def campaigns_page(request: Request):
    return _page(request, "campaigns.html", "诈骗活动 · Campaigns")


@router.get("/login")
def login_page(request: Request):
    console = _console(request)
    if console.sessions.open or request.scope.get("fanzha.session") or request.scope.get("fanzha.caller"):
        return Response(status_code=303, headers={"Location": "/ui"})
    session = console.sessions.verify(request.cookies.get(COOKIE))
    if session is not None:
        return Response(status_code=303, headers={"Location": "/ui"})
    body = _pages.get_template("login.html").render(title="登录 · Log in", csrf="", who=None, page="login",
                                                    auth=True, labels=[], source="")
    return HTMLResponse(body, headers=HEADERS)


@router.post("/login")
async def login(request: Request, body: LoginIn):
    console = _console(request)
    if console.sessions.open:
        return _error(409, "this service has no API key: the console is open, no login needed")
    name = console.sessions.key_name(body.key)
    if name is None:
        await asyncio.sleep(0.5)  # slows guessing down a little; keys should be long and random
        return _error(401, "unknown key")
    console.record(name, "login")
    response = JSONResponse({"ok": True, "name": name}, headers={"Cache-Control": "no-store"})
    response.headers.append("set-cookie", set_cookie(console.sessions.issue(name), _secure(request)))
    return response


@router.post("/logout")
def logout(request: Request):
    console, who, denied = _begin(request, post=True)
    if denied:
        return denied
    console.record(who, "logout")
    response = JSONResponse({"ok": True})
    response.headers.append("set-cookie", set_cookie("", _secure(request), max_age=0))
    return response


@router.get("/static/{name}")
def static(name: str):
    if name not in STATIC:
        return _error(404, "no such file")
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"})


# -- calls ------------------------------------------------------------------------------------
@router.post("/api/explain")
async def explain_text(request: Request, body: ExplainIn):
    console, who, denied = _begin(request, post=True)
    if denied:
        return denied
    slot = console.follower.acquire()
    try:  # the same function as POST /explain: the result is /classify's
        return await asyncio.to_thread(explain, slot.predictor, body.text, None)
    finally:
        console.follower.release(slot)


@router.get("/api/queue")
def queue_items(request: Request, kind: str = "", category: str = "", reason: str = "", since: str = "",
                status: str = "all", limit: int = 200):
    console, who, denied = _begin(request, post=False)
    if denied:
        return denied
    try:
        filters = Filters.parse(kind, category, reason, since, status)
    except ValueError as e:
        return _error(422, str(e))
    try:
        items = console.queue.items(filters, max(1, min(int(limit), 1000)))
    except StoreError as e:
        return _error(503, str(e))
    for item in items:
        item["domains"] = sorted(set(domains_in(item["text"].lower())))[:5]
    return {"items": items, "source": console.queue.source()}


@router.post("/api/label")
def label(request: Request, body: LabelIn):
    """Confirm fraud (with its type), spam, or mark legitimate: analyst feedback on each item."""
    console, who, denied = _begin(request, post=True, feedback=True)
    if denied:
        return denied
    if body.label not in console.campaigns.labels:
        return _error(422, f"unknown label {body.label!r}")
    try:
        items = console.queue.get(body.refs)
    except StoreError as e:
        return _error(503, str(e))
    missing = [r for r in body.refs if r not in items]
    if missing:
        return _error(404, f"no queue item {', '.join(missing[:5])}")
    action = "mark_legitimate" if body.label == "normal" else ("confirm_spam" if body.label == "spam" else "confirm_fraud")
    done = []
    slot = console.follower.acquire()
    try:
        for ref in body.refs:
            try:
                answer = console.campaigns.submit(slot.predictor.campaigns, items[ref]["text"], body.label, "analyst",
                                                  None, ref, f"console:{who}")
            except FeedbackError as e:
                return _error(422, str(e))
            except StoreError as e:
                return _error(503, str(e))
            console.record(who, action, ref, label=body.label, feedback_id=answer["id"], campaign=answer["campaign"])
            done.append({"ref": ref, "feedback_id": answer["id"], "campaign": answer["campaign"],
                         "campaign_state": answer["campaign_state"]})
    finally:
        console.follower.release(slot)
    return {"labelled": done, "label": body.label}


@router.post("/api/blocklist")
def blocklist(request: Request, body: BlockIn):
    """Add a domain or a phone number to the policy file's block-list; the service reloads it."""
    console, who, denied = _begin(request, post=True)
    if denied:
        return denied
    try:
        policy, added = console.policy_file.add_to_blocklist(body.kind, body.value)
    except PolicyError as e:
        return _error(422, str(e))
    console.record(who, "blocklist", body.ref, kind=body.kind, value=body.value, added=added)
    return {"added": added, "kind": body.kind, "policy": str(console.policy_file.path),
            "blocklist": {"domains": len(policy.block_domains), "phones": len(policy.block_phones)}}


_FORMULA = re.compile(r"^[=+\-@\t\r]")


def _cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if _FORMULA.match(text) else text


@router.post("/api/export")
def export_csv(request: Request, body: ExportIn):
    """The selected items (`refs`) or, without a selection, the filtered queue, as CSV."""
    console, who, denied = _begin(request, post=True)
    if denied:
        return denied
    try:
        if body.refs:
            found = console.queue.get(body.refs)
            items = [found[r] for r in body.refs if r in found]
            console.queue.with_status(items)
        else:
            items = console.queue.items(Filters.parse(body.kind, body.category, body.reason, body.since, body.status),
                                        1000)
    except ValueError as e:
        return _error(422, str(e))
    except StoreError as e:
        return _error(503, str(e))
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ("ref", "time", "kind", "action", "category", "label", "reason", "score", "fraud_score", "sender",
               "text", "status", "by")
    writer.writerow(columns)
    for i in items:
        when = dt.datetime.fromtimestamp(i["time"], dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if i["time"] else ""
        status = i.get("status") or {}
        writer.writerow([_cell(v) for v in (i["ref"], when, i["kind"], i["action"], i["category"], i["label"],
                                            i["reason"], i["score"], i["fraud_score"], i["sender"], mask(i["text"]),
                                            status.get("action") or status.get("state"), status.get("by"))])
    console.record(who, "export", None, rows=len(items), selection=bool(body.refs))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="fanzha-queue-{stamp}.csv"',
                             "Cache-Control": "no-store"})


@router.get("/api/campaigns")
def campaigns(request: Request):
    console, who, denied = _begin(request, post=False, feedback=True)
    if denied:
        return denied
    listing = [c for c in console.campaigns.listing() if not c.get("retired")]
    examples = console.campaigns.examples([c["id"] for c in listing])
    for c in listing:
        c["example"] = mask(examples.get(c["id"], ""))
    return {"campaigns": listing}


@router.post("/api/retire")
def retire(request: Request, body: RetireIn):
    console, who, denied = _begin(request, post=True, feedback=True)
    if denied:
        return denied
    try:
        state = console.campaigns.retire(body.campaign, who)
    except StoreError as e:
        return _error(503, str(e))
    if state is None:
        return _error(404, f"no campaign {body.campaign!r} in memory")
    console.record(who, "retire", body.campaign)
    return {"retired": body.campaign, "campaign_state": state}
