"""The analyst console in a real browser (Playwright driving Debian's Chromium) against a real
`bentoml serve` of the tiny model, with a real SQLite feedback store, the review log on, named
keys and a policy file of its own:

- /ui and /ui/queue show nothing without the key; a login turns the key into an HttpOnly,
  SameSite=Strict cookie; a POST without the CSRF token is refused;
- a typed message shows /classify's decision and one weighted element per character;
- the queue lists a flagged message (masked); confirming it makes its variant block as a
  campaign; block-listing a domain makes the next message with it block; retiring the
  campaign stops it; every action is in the action log with the key's name;
- `<script>` and `"><img onerror>` in messages stay text everywhere.

Screenshots: artifacts/console/*.png."""
from __future__ import annotations

import csv
import io
import sqlite3
import time

import httpx
import pytest
import yaml

from serving.audit import mask
from tests.serving.conftest import REPO, start_server, stop_server

pytestmark = pytest.mark.slow
KEY = "alice-console-key-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}
SHOTS = REPO / "artifacts" / "console"
SCAM = "【ETC服务】您的ETC认证已失效，请点击 http://etc-rz.top/a8 重新认证，客服13812345678，逾期将停用"
VARIANT = "【ETC服务】您的ETC认证已失效，请点击 http://etc-rz.top/k3 重新认证，客服13900004444，逾期将停用"
XSS = ['<script>window.__xss = 1</script>点击领取', '"><img src=x onerror="window.__xss=2">退款到账']
BLOCKED_DOMAIN = "evil-refund.top"


@pytest.fixture(scope="module")
def console(tiny_serving, tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    policy = yaml.safe_load((tiny_serving / "policy.yaml").read_text(encoding="utf-8"))
    policy["thresholds"]["fraud"]["flag"] = 0.0001  # the tiny model flags what it scores: a queue to work
    (root / "policy.yaml").write_text("# the console test's policy\n" + yaml.safe_dump(policy, allow_unicode=True),
                                      encoding="utf-8")
    db = root / "feedback.db"
    proc, base = start_server(tiny_serving, {
        "FANZHA_API_KEYS": f"alice:{KEY}", "FANZHA_FEEDBACK_DB": str(db), "FANZHA_REVIEW_LOG": "1",
        "FANZHA_POLICY": str(root / "policy.yaml"), "FANZHA_POLICY_CHECK_S": "0.2", "FANZHA_FEEDBACK_SYNC_S": "0.2"})
    try:
        yield base, db, root / "policy.yaml"
    finally:
        stop_server(proc)


def classify(base, texts):
    r = httpx.post(base + "/classify", json={"texts": texts}, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def eventually(check, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(0.1)


def test_nothing_without_the_key_and_csrf_on_every_post(console):
    base, _, _ = console
    for path in ("/ui", "/ui/queue", "/ui/campaigns"):
        r = httpx.get(base + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login" and r.content == b""
    assert httpx.get(base + "/ui/api/queue").status_code == 401
    assert httpx.post(base + "/ui/api/explain", json={"text": "x"}).status_code == 401
    assert httpx.get(base + "/ui/login").status_code == 200
    assert httpx.post(base + "/ui/login", json={"key": "wrong-key-123"}).status_code == 401
    login = httpx.post(base + "/ui/login", json={"key": KEY})
    assert login.status_code == 200 and login.json()["name"] == "alice"
    cookie = login.headers["set-cookie"]
    assert all(flag in cookie for flag in ("HttpOnly", "SameSite=Strict", "Path=/ui"))
    jar = {"fanzha_console": login.cookies["fanzha_console"]}
    assert httpx.get(base + "/ui/queue", cookies=jar).status_code == 200
    assert httpx.post(base + "/classify", json={"texts": ["x"]}, cookies=jar).status_code == 401  # the cookie is the console's only
    no_token = httpx.post(base + "/ui/api/blocklist", json={"kind": "domain", "value": "x.cn"}, cookies=jar)
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    bad = httpx.post(base + "/ui/api/label", json={"refs": ["r1"], "label": "fraud.other"}, cookies=jar,
                     headers={"X-CSRF-Token": "0" * 32})
    assert bad.status_code == 403
    forged = httpx.get(base + "/ui/queue", cookies={"fanzha_console": jar["fanzha_console"][:-2] + "00"},
                       follow_redirects=False)
    assert forged.status_code == 303
    # scripts use the Bearer key and need no token; bad requests are 4xx with the reason
    assert httpx.get(base + "/ui/api/queue", headers=AUTH).status_code == 200
    assert httpx.get(base + "/ui/api/queue?since=yesterday", headers=AUTH).status_code == 422
    assert httpx.post(base + "/ui/api/label", json={"refs": [], "label": "normal"}, headers=AUTH).status_code == 422
    assert httpx.post(base + "/ui/api/label", json={"refs": ["r999999"], "label": "normal"}, headers=AUTH).status_code == 404
    assert httpx.post(base + "/ui/api/blocklist", json={"kind": "domain", "value": "not a domain"},
                      headers=AUTH).status_code == 422
    assert httpx.post(base + "/ui/api/retire", json={"campaign": "c999"}, headers=AUTH).status_code == 404


def test_the_console_in_chromium(console, chromium_path):
    from playwright.sync_api import sync_playwright

    base, db, policy_path = console
    SHOTS.mkdir(parents=True, exist_ok=True)
    before = classify(base, [SCAM, VARIANT, *XSS, f"您的退款已到账，请登录 http://{BLOCKED_DOMAIN}/r 确认"])
    assert before[1]["action"] != "block" and before[4]["action"] != "block"  # neither blocks yet
    assert before[0]["action"] == "flag"  # so it is in the queue
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        # log in
        page.goto(base + "/ui")
        assert page.url.endswith("/ui/login")
        page.fill("#key", "wrong-key-123")
        page.click("#login")
        page.wait_for_selector("#login-error:not([hidden])")
        page.fill("#key", KEY)
        page.click("#login")
        page.wait_for_url(base + "/ui")
        cookie = next(c for c in page.context.cookies() if c["name"] == "fanzha_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # not readable by scripts

        # try a message: the decision is /classify's, one weighted element per character
        page.fill("textarea#message", SCAM)
        page.click("button#check")
        assert eventually(lambda: page.locator("#explanation span").count() == len(SCAM), 20)
        expected = classify(base, [SCAM])[0]
        decision = page.inner_text("#decision")
        for key in ("action", "label", "reason"):
            assert expected[key] in decision, (key, decision)
        assert f"{expected['fraud_score']:.3f}" in decision
        weights = page.eval_on_selector_all("#explanation span", "s => s.map(e => [e.textContent, e.dataset.weight])")
        assert "".join(ch for ch, _ in weights) == SCAM and all(w is not None for _, w in weights)
        assert any(abs(float(w)) > 0 for _, w in weights)
        page.screenshot(path=str(SHOTS / "try.png"), full_page=True)
        # XSS in the try page: the text stays text
        page.fill("textarea#message", XSS[1])
        page.click("button#check")
        assert eventually(lambda: page.locator("#explanation span").count() == len(XSS[1]), 20)
        assert page.query_selector("#explanation img") is None and page.evaluate("window.__xss") is None

        # the queue lists the flagged message, masked, and the XSS rows as text
        page.goto(base + "/ui/queue")
        row = page.wait_for_selector(f"#queue tbody tr:has(td.text:text-is('{mask(SCAM)}'))")
        assert "138****5678" in row.inner_text() and "13812345678" not in page.content()
        for text in XSS:
            page.wait_for_selector(f"#queue tbody td.text:text-is('{text}')")
        assert page.query_selector("#queue img") is None and page.query_selector("#queue script") is None
        assert page.evaluate("window.__xss") is None
        page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)

        # confirm it as fraud of a type: its variant now blocks as a campaign
        page.select_option("#fraud-type", "fraud.fake_customer_service")
        row.query_selector("button.danger").click()
        page.wait_for_selector(f"#queue tbody tr.done:has(td.text:text-is('{mask(SCAM)}'))")
        after = classify(base, [VARIANT])[0]
        assert after["action"] == "block" and after["reason"].startswith("campaign:c"), after

        # a selection: both XSS rows marked legitimate at once, then the selection exported as CSV
        for text in XSS:
            page.check(f"#queue tbody tr:has(td.text:text-is('{text}')) input[type=checkbox]")
        assert page.inner_text("#selected-count") == "2"
        page.click("#legit")
        for text in XSS:
            page.wait_for_selector(f"#queue tbody tr.done:has(td.text:text-is('{text}'))")
        page.check(f"#queue tbody tr:has(td.text:text-is('{XSS[0]}')) input[type=checkbox]")
        with page.expect_download() as download:
            page.click("#export")
        exported = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8-sig").read())))
        assert [r["text"] for r in exported] == [XSS[0]] and exported[0]["status"] == "mark_legitimate"
        assert exported[0]["by"] == "alice"

        # block-list a domain from the toolbar: the next message with it blocks
        page.select_option("#block-kind", "domain")
        page.fill("#block-value", BLOCKED_DOMAIN)
        page.click("#block")
        page.wait_for_selector(f"#toast.show:has-text('added: {BLOCKED_DOMAIN}')")
        assert BLOCKED_DOMAIN in policy_path.read_text(encoding="utf-8")
        assert policy_path.read_text(encoding="utf-8").startswith("# the console test's policy")
        blocked = eventually(lambda: (r := classify(base, [f"退款请登录 https://www.{BLOCKED_DOMAIN}/x"])[0])["action"] == "block" and r)
        assert blocked and blocked["reason"] == f"blocklist:domain:{BLOCKED_DOMAIN}"

        # campaigns: listed with a masked example; retiring stops it
        page.goto(base + "/ui/campaigns")
        campaign = after["reason"].split(":", 1)[1]
        crow = page.wait_for_selector(f"#campaigns tr[data-campaign='{campaign}']")
        assert "138****5678" in crow.inner_text()
        page.screenshot(path=str(SHOTS / "campaigns.png"), full_page=True)
        crow.query_selector("button").click()
        page.wait_for_selector(f"#campaigns tr[data-campaign='{campaign}']", state="detached")
        assert classify(base, [VARIANT])[0]["reason"] != after["reason"]
        # no CDN: every request went to the service; no message text in any URL
        assert requested and all(u.startswith(base) for u in requested)
        assert not any("ETC" in u or "%E3%80%90" in u or "script" in u for u in requested)
        browser.close()

    with sqlite3.connect(db) as conn:
        actions = conn.execute("SELECT key_name, action FROM console_actions ORDER BY id").fetchall()
        assert {("alice", a) for a in ("login", "confirm_fraud", "mark_legitimate", "export", "blocklist",
                                       "retire")} <= set(actions)
        assert not any(SCAM in (d or "") for (d,) in conn.execute("SELECT detail FROM console_actions"))
        label = conn.execute("SELECT label, source, note FROM feedback WHERE source = 'analyst'").fetchone()
        assert label == ("fraud.fake_customer_service", "analyst", "console:alice")


def test_export_csv_is_masked_and_safe_for_spreadsheets(console):
    base, _, _ = console
    classify(base, ["=HYPERLINK(\"http://x.cn\") 您的账户13812345678已冻结"])
    r = httpx.post(base + "/ui/api/export", json={"since": "1h"}, headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows and "13812345678" not in r.text
    formula = [row for row in rows if "HYPERLINK" in row["text"]]
    assert formula and formula[0]["text"].startswith("'=")
