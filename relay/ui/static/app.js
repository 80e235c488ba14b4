// Mosaic Relay UI: live counts, auto-refresh, replay and the route tester, through /api/.
// Event text only ever reaches the page through textContent or server-escaped HTML.
"use strict";

(function () {
  const REFRESH_MS = Number(document.body.dataset.refreshMs) || 4000;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  let leaving = false; // a form is navigating away (log out, filters): stop refreshing
  document.addEventListener("submit", (event) => {
    if (!event.defaultPrevented && event.target.id !== "route-test") leaving = true;
  });

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
    if (response.status === 401 && !leaving) {
      location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function setResult(target, text, ok) {
    if (!target) return;
    target.textContent = text;
    target.className = ok ? "ok" : "error";
  }

  // --- live counts and auto-refresh ------------------------------------------------------------

  async function refreshCounts() {
    const r = await api("GET", "/api/counts");
    if (!r.ok || !r.data) return;
    for (const node of document.querySelectorAll("[data-count]")) {
      const value = r.data[node.dataset.count];
      node.textContent = value === null || value === undefined ? "–" : String(value);
    }
  }

  async function refreshLive() {
    const live = document.getElementById("live");
    if (!live) return;
    const response = await fetch(location.href, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (!response.ok || response.redirected) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("live");
    if (!fresh) return;
    const open = new Set();
    const closed = new Set();
    for (const d of live.querySelectorAll("details[id]")) (d.open ? open : closed).add(d.id);
    const node = document.importNode(fresh, true);
    for (const d of node.querySelectorAll("details[id]")) {
      if (open.has(d.id)) d.open = true;
      if (closed.has(d.id)) d.open = false;
    }
    live.replaceWith(node);
    document.body.dataset.refreshedAt = String(Date.now());
  }

  const toggle = document.getElementById("auto-refresh");
  if (toggle) {
    toggle.checked = localStorage.getItem("relay-auto-refresh") !== "off";
    toggle.addEventListener("change", () => {
      localStorage.setItem("relay-auto-refresh", toggle.checked ? "on" : "off");
    });
    setInterval(() => {
      if (!toggle.checked || document.hidden || leaving) return;
      refreshCounts().catch(() => {});
      refreshLive().catch(() => {});
    }, REFRESH_MS);
  }

  // --- replay ------------------------------------------------------------------------------------

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-replay]");
    if (!button) return;
    const id = button.dataset.replay;
    const result = document.getElementById("result");
    if (id === "all" && !confirm("Replay every dead letter? Their messages will be sent again.")) {
      return;
    }
    button.disabled = true;
    const path =
      id === "all" ? "/api/dead-letters/replay" : "/api/dead-letters/" + encodeURIComponent(id) + "/replay";
    try {
      const r = await api("POST", path);
      if (r.ok) {
        const n = r.data.replayed;
        setResult(result, n === 0 ? "Nothing to replay." : `Replayed ${n} dead letter${n === 1 ? "" : "s"}: delivery starts now.`, true);
      } else {
        setResult(result, "Replay failed: " + ((r.data && r.data.error) || r.status), false);
      }
    } catch (e) {
      setResult(result, "Replay failed: " + e, false);
    }
    button.disabled = false;
    await Promise.all([refreshLive(), refreshCounts()]).catch(() => {});
  });

  // --- route tester --------------------------------------------------------------------------------

  const form = document.getElementById("route-test");
  const sample = document.getElementById("sample");
  const textarea = document.getElementById("event-json");
  const output = document.getElementById("rt-result");

  if (sample && textarea) {
    sample.addEventListener("change", async () => {
      if (!sample.value) return;
      const r = await api("GET", "/api/samples/" + encodeURIComponent(sample.value));
      if (r.ok) textarea.value = JSON.stringify(r.data, null, 2);
    });
  }

  function preview(d) {
    const article = el("article", null, "preview card");
    const head = el("h3", `→ ${d.channel} (${d.type})`);
    article.append(head);
    article.append(el("p", `route ${d.route} · template ${d.template || "default"} · mode ${d.mode}`, "meta"));
    if (d.error) {
      article.append(el("p", "Render error: " + d.error, "error"));
      return article;
    }
    if (d.subject) article.append(el("p", "Subject: " + d.subject, "subject"));
    article.append(el("pre", d.text, "message"));
    for (const [key, label] of [["blocks", "Slack blocks"], ["html", "HTML"]]) {
      if (d[key] === undefined || d[key] === null) continue;
      const details = el("details");
      details.append(el("summary", label));
      details.append(el("pre", typeof d[key] === "string" ? d[key] : JSON.stringify(d[key], null, 2)));
      article.append(details);
    }
    return article;
  }

  if (form && textarea && output) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      output.replaceChildren(el("p", "Testing…", "muted"));
      let r;
      try {
        r = await api("POST", "/api/route-test", textarea.value);
      } catch (e) {
        output.replaceChildren(el("p", "Route test failed: " + e, "error"));
        return;
      }
      if (!r.ok) {
        output.replaceChildren(el("p", (r.data && r.data.error) || "Route test failed (" + r.status + ")", "error"));
        return;
      }
      const e = r.data.event;
      const nodes = [el("h2", `${e.flag} ${e.status} · run ${e.run_id}`)];
      if (!r.data.deliveries.length) nodes.push(el("p", "No route matches: nothing would be sent.", "empty"));
      for (const d of r.data.deliveries) nodes.push(preview(d));
      output.replaceChildren(...nodes);
    });
  }
})();
