// fanzha analyst console: vanilla JS. Message text is only ever put into the page with
// textContent (never innerHTML), and only sent in POST bodies, never in a URL.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (sel) => document.querySelector(sel);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c);
    return node;
  }

  function toast(message, bad) {
    const t = $("#toast");
    t.textContent = message;
    t.className = "show" + (bad ? " bad" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = ""; }, 4000);
  }

  async function call(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf;
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (response.status === 401) { window.location.assign("/ui/login"); throw new Error("not logged in"); }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.blob();
    if (!response.ok) throw new Error((data && data.error) || ("HTTP " + response.status));
    return data;
  }

  const fmt = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(3));
  const when = (ts) => (ts ? new Date(ts * 1000).toLocaleString("zh-CN", { hour12: false }) : "—");
  const actionBadge = (a) => el("span", { class: "action " + (a || ""), text: a || "—" });

  // ---- log in / out ------------------------------------------------------------------------
  function initLogin() {
    $("#login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const error = $("#login-error");
      error.hidden = true;
      try {
        const r = await fetch("/ui/login", { method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key: $("#key").value }) });
        if (!r.ok) throw new Error((await r.json()).error || "login failed");
        window.location.assign("/ui");
      } catch (e) { error.textContent = e.message; error.hidden = false; }
    });
  }
  const logout = $("#logout");
  if (logout) logout.addEventListener("click", async () => {
    await call("POST", "/ui/logout", {}).catch(() => {});
    window.location.assign("/ui/login");
  });

  // ---- try a message -----------------------------------------------------------------------
  function showDecision(result) {
    const d = $("#decision");
    d.replaceChildren();
    const rows = [["动作 action", actionBadge(result.action)], ["类别 category", result.category],
      ["标签 label", result.label], ["分数 score", fmt(result.score)], ["诈骗 fraud_score", fmt(result.fraud_score)],
      ["垃圾 spam_score", fmt(result.spam_score)], ["原因 reason", result.reason || "—"]];
    if (result.error) rows.push(["error", result.error]);
    for (const [k, v] of rows) d.append(el("dt", { text: k }), el("dd", {}, v === null || v === undefined ? "—" : v));
    d.dataset.action = result.action || "";
  }

  function showWeights(text, weights) {
    const box = $("#explanation");
    box.replaceChildren();
    const chars = Array.from(text);  // code points, as the service counts them
    const top = Math.max(1e-6, ...weights.map((w) => Math.abs(w)));
    chars.forEach((ch, i) => {
      const w = weights[i] || 0;
      const span = el("span", { text: ch, "data-weight": w.toFixed(4), title: w.toFixed(4) });
      const a = Math.min(1, Math.abs(w) / top) * 0.75;
      span.style.backgroundColor = w >= 0 ? `rgba(220, 38, 38, ${a.toFixed(3)})` : `rgba(37, 99, 235, ${a.toFixed(3)})`;
      box.append(span);
    });
  }

  function initTry() {
    $("#check").addEventListener("click", async () => {
      const text = $("#message").value;
      if (!text.trim()) { toast("请输入消息 · type a message first", true); return; }
      const status = $("#check-status");
      $("#check").disabled = true;
      status.textContent = "…";
      try {
        const started = performance.now();
        const r = await call("POST", "/ui/api/explain", { text });
        showDecision(r.result);
        showWeights(text, r.weights);
        status.textContent = `${Math.round(performance.now() - started)} ms · ${r.copies} occluded copies`;
      } catch (e) { toast(e.message, true); status.textContent = ""; }
      finally { $("#check").disabled = false; }
    });
  }

  // ---- review queue ------------------------------------------------------------------------
  const selected = new Set();
  function filters() {
    return { kind: $("#f-kind").value, category: $("#f-category").value, reason: $("#f-reason").value.trim(),
             since: $("#f-since").value, status: $("#f-status").value };
  }

  async function loadQueue() {
    const query = new URLSearchParams(filters());  // filters only: no message text in the URL
    let data;
    try { data = await call("GET", "/ui/api/queue?" + query.toString()); }
    catch (e) { toast(e.message, true); return; }
    const body = $("#queue tbody");
    body.replaceChildren();
    selected.clear();
    for (const item of data.items) {
      const box = el("input", { type: "checkbox", "data-ref": item.ref });
      box.addEventListener("change", () => { box.checked ? selected.add(item.ref) : selected.delete(item.ref); count(); });
      const status = item.status || { state: "open" };
      const statusCell = el("td", { class: "status " + status.state,
        text: status.state === "done" ? `${status.action} · ${status.by}` : "open" });
      const rowActions = el("td", {});
      rowActions.append(button("确认 Confirm", "small danger", () => labelRefs([item.ref], $("#fraud-type").value)),
                        " ", button("正常 Legit", "small", () => labelRefs([item.ref], "normal")));
      for (const d of item.domains || []) {
        rowActions.append(" ", button("封 " + d, "small quiet", () => blockList("domain", d, item.ref)));
      }
      const tr = el("tr", { class: status.state, "data-ref": item.ref },
        el("td", {}, box), el("td", { text: when(item.time) }), el("td", {}, item.kind === "appeal"
          ? el("span", { class: "action flag", text: "appeal" }) : actionBadge(item.action)),
        el("td", { text: item.label || "—" }), el("td", { text: fmt(item.score) }), el("td", { text: item.reason || "—" }),
        el("td", { text: item.sender || "—" }), el("td", { class: "text", text: item.text }), statusCell, rowActions);
      body.append(tr);
    }
    $("#queue-empty").hidden = data.items.length > 0;
    $("#select-all").checked = false;
    count();
  }

  function button(label, cls, onClick) {
    const b = el("button", { type: "button", class: cls, text: label });
    b.addEventListener("click", onClick);
    return b;
  }

  function count() { $("#selected-count").textContent = String(selected.size); }

  async function labelRefs(refs, label) {
    if (!refs.length) { toast("先选择行 · select rows first", true); return; }
    try {
      const r = await call("POST", "/ui/api/label", { refs, label });
      toast(`${r.labelled.length} × ${label} → ` + r.labelled.map((x) => x.campaign).join(", "));
      await loadQueue();
    } catch (e) { toast(e.message, true); }
  }

  async function blockList(kind, value, ref) {
    if (!value) { toast("输入域名或号码 · type a domain or a number", true); return; }
    try {
      const r = await call("POST", "/ui/api/blocklist", { kind, value, ref: ref || null });
      toast((r.added ? "已加入黑名单 added: " : "already on the block-list: ") + value);
      $("#block-value").value = "";
    } catch (e) { toast(e.message, true); }
  }

  async function exportCsv() {
    const body = selected.size ? { refs: Array.from(selected) } : filters();
    try {
      const blob = await call("POST", "/ui/api/export", body);
      const a = el("a", { href: URL.createObjectURL(blob), download: "fanzha-queue.csv" });
      document.body.append(a);
      a.click();
      a.remove();
      toast("exported " + (selected.size || "the filtered") + " rows");
    } catch (e) { toast(e.message, true); }
  }

  function initQueue() {
    $("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadQueue(); });
    for (const id of ["#f-kind", "#f-category", "#f-since", "#f-status"]) $(id).addEventListener("change", loadQueue);
    $("#select-all").addEventListener("change", (ev) => {
      document.querySelectorAll("#queue tbody input[type=checkbox]").forEach((b) => {
        b.checked = ev.target.checked;
        b.checked ? selected.add(b.dataset.ref) : selected.delete(b.dataset.ref);
      });
      count();
    });
    $("#confirm").addEventListener("click", () => labelRefs(Array.from(selected), $("#fraud-type").value));
    $("#legit").addEventListener("click", () => labelRefs(Array.from(selected), "normal"));
    $("#export").addEventListener("click", exportCsv);
    $("#block").addEventListener("click", () => blockList($("#block-kind").value, $("#block-value").value.trim()));
    loadQueue();
  }

  // ---- campaigns ---------------------------------------------------------------------------
  async function loadCampaigns() {
    let data;
    try { data = await call("GET", "/ui/api/campaigns"); } catch (e) { toast(e.message, true); return; }
    const body = $("#campaigns tbody");
    body.replaceChildren();
    for (const c of data.campaigns) {
      const retire = button("退役 Retire", "small quiet", async () => {
        try { await call("POST", "/ui/api/retire", { campaign: c.id }); toast("retired " + c.id); loadCampaigns(); }
        catch (e) { toast(e.message, true); }
      });
      body.append(el("tr", { "data-campaign": c.id }, el("td", { text: c.id }), el("td", { text: c.label || "—" }),
        el("td", {}, c.action ? actionBadge(c.action) : el("span", { class: "hint", text: c.exempt ? "exempt" : "undecided" })),
        el("td", { text: String(c.size) }), el("td", { text: c.confirmed_by_analyst ? "analyst" : `${c.weight} / ${c.min_weight}` }),
        el("td", { text: when(c.first_seen) }), el("td", { text: when(c.last_seen) }),
        el("td", { class: "text", text: c.example || "" }), el("td", {}, retire)));
    }
    $("#campaigns-empty").hidden = data.campaigns.length > 0;
  }

  const page = document.body.dataset.page;
  if (page === "login") initLogin();
  else if (page === "try") initTry();
  else if (page === "queue") initQueue();
  else if (page === "campaigns") loadCampaigns();
})();
