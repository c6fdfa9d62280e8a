// The page of `troupe serve`: runs, a form to start one, a live run view with approvals, and
// the report with its citations. No framework, no build step. Everything a run shows (model
// output, documents, tool arguments) is untrusted: it only ever reaches the page as text nodes
// (`textContent`), never as HTML.
"use strict";

(function () {
  // ---- small helpers --------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** An element: attributes (class, data-*, …; `on*` functions become listeners) and children
   * (strings become text nodes). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
      } else if (k === "class") {
        el.className = v;
      } else if (k === "text") {
        el.textContent = v;
      } else {
        el.setAttribute(k, v === true ? "" : String(v));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function show(el, on) {
    el.hidden = !on;
  }

  const enc = encodeURIComponent;

  function fmtTokens(n) {
    if (n === null || n === undefined) return "—";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return Math.round(n / 1e3) + "k";
    return String(n);
  }

  function fmtCost(c) {
    if (c === null || c === undefined) return "—";
    return "$" + (c < 0.01 ? c.toFixed(4) : c.toFixed(2));
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    const m = Math.floor(ms / 60000);
    return m + " min " + Math.round((ms % 60000) / 1000) + " s";
  }

  function fmtTime(ms) {
    if (!ms) return "—";
    const d = new Date(ms);
    const now = new Date();
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    if (d.toDateString() === now.toDateString()) return time;
    return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + time;
  }

  function shorten(s, n) {
    s = String(s === null || s === undefined ? "" : s);
    return s.length > n ? s.slice(0, n) + "…" : s;
  }

  // ---- statuses -------------------------------------------------------------------------

  const RUN_LABELS = {
    queued: "queued",
    running: "running",
    crashed: "crashed",
    awaiting_approval: "awaiting approval",
    completed: "completed",
    failed: "failed",
    interrupted: "interrupted",
    timed_out: "timed out",
    budget_exhausted: "budget exhausted",
  };
  const TASK_LABELS = {
    pending: "pending",
    running: "running",
    completed: "completed",
    limit_reached: "limit reached",
    unreviewed: "unreviewed",
    not_approved: "not approved",
    failed: "failed",
    cancelled: "cancelled",
    skipped: "skipped",
    awaiting_approval: "awaiting approval",
    rejected: "rejected",
  };
  const LIVE = new Set(["queued", "running", "awaiting_approval"]);
  const RESUMABLE = new Set(["crashed", "interrupted", "failed", "timed_out", "budget_exhausted"]);

  function badge(status, labels, testid) {
    const label = (labels || RUN_LABELS)[status] || String(status || "unknown").replace(/_/g, " ");
    return h("span", {
      class: "badge status-" + String(status || "unknown").replace(/[^a-z_]/g, ""),
      "data-status": status,
      "data-testid": testid || "status-badge",
      text: label,
    });
  }

  function setBadge(el, status, labels) {
    const fresh = badge(status, labels, el.getAttribute("data-testid"));
    el.className = fresh.className;
    el.setAttribute("data-status", status);
    el.textContent = fresh.textContent;
  }

  // ---- the API --------------------------------------------------------------------------

  /** `{status, body, headers}`; `body` is JSON when the answer is JSON, else text. */
  async function api(method, path, body) {
    const opts = { method, credentials: "same-origin", headers: {} };
    if (body instanceof FormData) {
      opts.body = body;
    } else if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, opts);
    } catch (e) {
      return { status: 0, body: { error: "the server cannot be reached", hint: String(e) }, headers: new Headers() };
    }
    const type = r.headers.get("Content-Type") || "";
    let out;
    if (type.includes("json")) {
      out = await r.json().catch(() => null);
    } else {
      out = await r.text().catch(() => "");
    }
    if (r.status === 401) needToken();
    return { status: r.status, body: out, headers: r.headers };
  }

  function needToken() {
    banner("This server needs a token: open the page once as /?token=<token> (the value of the variable `troupe serve --token-env` names).");
  }

  function banner(text) {
    const b = $("banner");
    b.textContent = text;
    show(b, !!text);
  }

  /** An API error as a block: the message, its hint, each located diagnostic. */
  function errorBlock(res, what) {
    const body = res.body && typeof res.body === "object" ? res.body : { error: String(res.body || "") };
    const box = h("div", { class: "error" },
      h("p", { class: "error-title", "data-testid": "error-message" },
        (what ? what + ": " : "") + (body.error || "HTTP " + res.status)));
    if (body.hint) box.appendChild(h("p", { class: "hint", "data-testid": "error-hint" }, "hint: " + body.hint));
    if (Array.isArray(body.diagnostics) && body.diagnostics.length) {
      const list = h("ol", { class: "diagnostics", "data-testid": "diagnostics" });
      for (const d of body.diagnostics) {
        const file = String(d.file || "").split(/[\\/]/).pop();
        list.appendChild(h("li", { "data-testid": "diagnostic" },
          h("div", { class: "diag-where" },
            h("span", { class: "mono diag-path", "data-testid": "diagnostic-path" }, d.path || "(file)"),
            " ",
            h("span", { class: "muted mono", "data-testid": "diagnostic-location" }, (file ? file + ":" : "") + d.line + ":" + d.column)),
          h("div", { class: "diag-message", "data-testid": "diagnostic-message" }, d.message),
          d.hint ? h("div", { class: "hint", "data-testid": "diagnostic-hint" }, "hint: " + d.hint) : null));
      }
      box.appendChild(list);
    }
    return box;
  }

  // ---- the runs list ----------------------------------------------------------------------

  let currentRun = null; // the run view's state, when a run is shown
  let runsTimer = null;

  async function refreshRuns() {
    const res = await api("GET", "/v1/runs?limit=100");
    if (res.status !== 200 || !Array.isArray(res.body)) return;
    const tbody = $("runs-body");
    clear(tbody);
    show($("runs-empty"), res.body.length === 0);
    for (const r of res.body) {
      const tokens = (r.input_tokens || 0) + (r.output_tokens || 0);
      const row = h("tr", {
        class: "run-row" + (currentRun && currentRun.id === r.id ? " selected" : ""),
        "data-testid": "run-row",
        "data-run-id": r.id,
        "data-status": r.status,
        tabindex: "0",
        title: r.id + (r.ended_by ? " — " + r.ended_by : ""),
        onclick: () => go("#/runs/" + r.id),
        onkeydown: (e) => { if (e.key === "Enter") go("#/runs/" + r.id); },
      },
        h("td", {}, badge(r.status)),
        h("td", { class: "crew" }, r.crew, r.parent ? h("span", { class: "muted", title: "replay of " + r.parent }, " ↺") : null),
        h("td", { class: "when" }, fmtTime(r.started_ms)),
        h("td", { class: "num" }, fmtTokens(tokens)),
        h("td", { class: "num" }, fmtCost(r.cost_usd)));
      tbody.appendChild(row);
    }
  }

  function scheduleRuns() {
    clearInterval(runsTimer);
    runsTimer = setInterval(() => { if (!document.hidden) refreshRuns(); }, 3000);
  }

  // ---- the form -------------------------------------------------------------------------

  let crews = [];
  const INLINE = "(inline)";

  async function loadCrews() {
    const res = await api("GET", "/v1/crews");
    crews = res.status === 200 && Array.isArray(res.body) ? res.body : [];
    const sel = $("crew-select");
    const before = sel.value;
    clear(sel);
    for (const c of crews) {
      sel.appendChild(h("option", { value: c.name }, c.name + (c.valid ? "" : " (invalid)")));
    }
    sel.appendChild(h("option", { value: INLINE }, "Paste a crew file (JSON)…"));
    if (before && [...sel.options].some((o) => o.value === before)) sel.value = before;
    crewChosen();
  }

  function crewChosen() {
    const name = $("crew-select").value;
    const inline = name === INLINE;
    const crew = crews.find((c) => c.name === name);
    show($("inline-field"), inline);
    $("crew-description").textContent = crew ? crew.description || "" : inline ? "Send a crew file's JSON with the run. It may not read the server's files: upload its documents below." : "";
    const tasks = clear($("crew-tasks"));
    if (crew) {
      for (const t of crew.tasks) {
        tasks.appendChild(h("li", {},
          h("span", { class: "mono" }, t.id),
          t.agent ? h("span", { class: "muted" }, " · " + t.agent) : null,
          t.output_file ? h("span", { class: "muted" }, " → " + t.output_file) : null,
          t.approval ? h("span", { class: "tag" }, "needs approval") : null));
      }
    }
    const problems = clear($("crew-problems"));
    if (crew && !crew.valid) {
      problems.appendChild(errorBlock({ status: 422, body: { error: "this crew file does not pass validation", diagnostics: crew.diagnostics } }));
    }
    show(problems, !!(crew && !crew.valid));
    const inputs = clear($("inputs"));
    const keys = crew ? Object.keys(crew.inputs || {}) : [];
    for (const k of keys) {
      const def = crew.inputs[k];
      inputs.appendChild(h("label", { class: "field" },
        h("span", { class: "mono" }, k),
        h("input", { type: "text", name: k, "data-input": k, "data-testid": "input-" + k, value: def === null ? "" : def, placeholder: def === null ? "required" : "" })));
    }
    show($("inputs-field"), keys.length > 0);
    show($("documents-field"), inline || !!(crew && crew.uses_documents));
    show($("form-error"), false);
  }

  async function startRun(ev) {
    ev.preventDefault();
    const errBox = clear($("form-error"));
    show(errBox, false);
    const fail = (res, what) => {
      errBox.appendChild(errorBlock(res, what));
      show(errBox, true);
    };
    const name = $("crew-select").value;
    let crew = name;
    if (name === INLINE) {
      try {
        crew = JSON.parse($("inline-crew").value);
      } catch (e) {
        fail({ status: 400, body: { error: "the crew file is not JSON: " + e.message } });
        return;
      }
    }
    if (!name) {
      fail({ status: 400, body: { error: "choose a crew", hint: "the server offers the crews of `troupe serve --crews DIR`" } });
      return;
    }
    const inputs = {};
    for (const el of $("inputs").querySelectorAll("input[data-input]")) {
      if (el.value !== "") inputs[el.getAttribute("data-input")] = el.value;
    }
    const button = $("start-run");
    button.disabled = true;
    show($("form-busy"), true);
    try {
      const documents = [];
      const files = $("documents").files;
      if (!$("documents-field").hidden && files && files.length) {
        $("form-busy").textContent = "uploading " + files.length + " document(s)…";
        const form = new FormData();
        for (const f of files) form.append("file", f, f.name);
        const up = await api("POST", "/v1/documents", form);
        if (up.status !== 201) {
          fail(up, "upload refused");
          return;
        }
        for (const d of up.body) documents.push(d.id);
      }
      $("form-busy").textContent = "starting…";
      const res = await api("POST", "/v1/runs", { crew, inputs, documents });
      if (res.status === 201) {
        $("documents").value = "";
        await refreshRuns();
        go("#/runs/" + res.body.id);
        return;
      }
      if (res.status === 429) {
        const after = res.headers.get("Retry-After");
        const body = Object.assign({}, res.body || {});
        body.error = "The queue is full: retry after " + (after ? after + " s" : "a while") + ". " + (body.error || "");
        fail({ status: 429, body }, null);
        errBox.querySelector(".error").setAttribute("data-testid", "queue-full");
        return;
      }
      fail(res, res.status === 422 ? "the run was refused" : "the run could not start");
    } finally {
      button.disabled = false;
      show($("form-busy"), false);
    }
  }

  // ---- the run view ---------------------------------------------------------------------

  /** The state of a shown run: its tasks, as the events told them, and its stream. */
  function newRunState(id) {
    return {
      id,
      lastSeq: 0,
      tasks: new Map(), // task id -> {id, agent, status, ...}
      order: [],
      events: 0,
      status: null,
      detail: null,
      abort: null,
      ended: false,
      retry: null,
      reportShown: false,
      streaming: false,
      report: null,
    };
  }

  function task(st, id, agent) {
    let t = st.tasks.get(id);
    if (!t) {
      t = { id, agent: agent || "", status: "pending", round: 0, reviews: [], tools: [], calls: 0, input: 0, output: 0, notes: [], approval: null, error: null, file: null, duration: null };
      st.tasks.set(id, t);
      st.order.push(id);
    }
    if (agent && !t.agent) t.agent = agent;
    return t;
  }

  function showRun(id) {
    if (currentRun && currentRun.id === id) return;
    stopRun();
    const st = (currentRun = newRunState(id));
    $("run-id").textContent = id;
    $("run-crew").textContent = "";
    setBadge($("run-status"), "queued");
    $("run-stats").textContent = "";
    clear($("timeline"));
    clear($("run-notices"));
    clear($("event-log"));
    clear($("files"));
    clear($("approval"));
    show($("approval"), false);
    show($("report-section"), false);
    show($("report"), false);
    show($("passage"), false);
    show($("run-note"), false);
    $("event-count").textContent = "";
    for (const row of document.querySelectorAll(".run-row")) {
      row.classList.toggle("selected", row.getAttribute("data-run-id") === id);
    }
    loadDetail(st).then(() => stream(st));
  }

  function stopRun() {
    if (!currentRun) return;
    currentRun.ended = true;
    if (currentRun.abort) currentRun.abort.abort();
    clearTimeout(currentRun.retry);
    currentRun = null;
  }

  async function loadDetail(st) {
    const res = await api("GET", "/v1/runs/" + enc(st.id));
    if (st !== currentRun) return;
    if (res.status !== 200) {
      const note = $("run-note");
      clear(note).appendChild(errorBlock(res, "this run cannot be shown"));
      show(note, true);
      return;
    }
    const d = (st.detail = res.body);
    st.status = d.status;
    $("run-crew").textContent = d.crew;
    setBadge($("run-status"), d.status);
    const tokens = "tokens " + fmtTokens(d.input_tokens) + " in · " + fmtTokens(d.output_tokens) + " out";
    const dur = d.finished_ms && d.started_ms ? " · " + fmtMs(d.finished_ms - d.started_ms) : "";
    $("run-stats").textContent = "started " + fmtTime(d.started_ms) + dur + " · " + tokens + " · cost " + fmtCost(d.cost_usd) +
      (d.parent ? " · replay of " + d.parent : "");
    show($("cancel-run"), LIVE.has(d.status));
    show($("resume-run"), RESUMABLE.has(d.status));
    const note = $("run-note");
    if (d.ended_by && d.status !== "completed") {
      note.textContent = "Ended by: " + d.ended_by;
      show(note, true);
    } else if (d.status === "queued") {
      note.textContent = "Waiting for a free slot on the server.";
      show(note, true);
    } else {
      show(note, false);
    }
    // Task records fill in what the events have not said (a run of another process).
    for (const rec of d.tasks || []) {
      const t = task(st, rec.id, rec.agent);
      if (rec.status) t.status = rec.status;
      if (rec.usage) {
        t.input = rec.usage.input_tokens || t.input;
        t.output = rec.usage.output_tokens || t.output;
      }
      if (rec.error) t.error = rec.error;
    }
    renderTimeline(st);
    renderFiles(st, d.files || []);
    renderApproval(st, d);
    if ((d.files || []).includes("report.json") || (d.files || []).includes("report.md")) {
      show($("report-section"), true);
      if (st.reportShown) await openReport(st);
    }
  }

  function renderFiles(st, files) {
    const ul = clear($("files"));
    for (const f of files) {
      ul.appendChild(h("li", {}, h("a", { href: "/v1/runs/" + enc(st.id) + "/files/" + enc(f), target: "_blank", rel: "noopener", "data-testid": "file-link", "data-file": f }, f)));
    }
    if (!files.length) ul.appendChild(h("li", { class: "muted" }, "none yet"));
  }

  // The event stream, read with fetch so that every event type arrives and a reconnect sends
  // `Last-Event-ID`.
  async function stream(st) {
    if (st.ended || st !== currentRun || st.streaming) return;
    st.streaming = true;
    try {
      await readStream(st);
    } finally {
      st.streaming = false;
    }
  }

  async function readStream(st) {
    const ctl = (st.abort = new AbortController());
    let res;
    try {
      res = await fetch("/v1/runs/" + enc(st.id) + "/events", {
        credentials: "same-origin",
        headers: st.lastSeq ? { "Last-Event-ID": String(st.lastSeq), Accept: "text/event-stream" } : { Accept: "text/event-stream" },
        signal: ctl.signal,
      });
    } catch (e) {
      return reconnect(st, 2000);
    }
    if (res.status === 401) return needToken();
    if (!res.ok || !res.body) return reconnect(st, 3000);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    let ev = { id: null, event: null, data: [] };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === "\r" && buf[nl + 1] === "\n" ? 2 : 1));
          if (line === "") {
            if (ev.data.length) dispatch(st, ev);
            ev = { id: null, event: null, data: [] };
          } else if (!line.startsWith(":")) {
            const i = line.indexOf(":");
            const field = i < 0 ? line : line.slice(0, i);
            let val = i < 0 ? "" : line.slice(i + 1);
            if (val.startsWith(" ")) val = val.slice(1);
            if (field === "id") ev.id = val;
            else if (field === "event") ev.event = val;
            else if (field === "data") ev.data.push(val);
          }
        }
      }
    } catch (e) {
      if (st.ended || st !== currentRun) return;
      return reconnect(st, 1000);
    }
    if (st.ended || st !== currentRun) return;
    // The stream ended: the run finished, or it stopped without saying so (a crash).
    await loadDetail(st);
    if (st !== currentRun) return;
    if (LIVE.has(st.status)) reconnect(st, 1500);
    refreshRuns();
  }

  function reconnect(st, ms) {
    if (st.ended || st !== currentRun) return;
    clearTimeout(st.retry);
    st.retry = setTimeout(() => stream(st), ms);
  }

  function dispatch(st, raw) {
    let e;
    try {
      e = JSON.parse(raw.data.join("\n"));
    } catch (_) {
      return;
    }
    const seq = Number(raw.id || e.seq || 0);
    if (seq && seq <= st.lastSeq) return; // seen already
    if (seq) st.lastSeq = seq;
    const type = raw.event || e.type;
    apply(st, type, e);
    logEvent(st, seq, type, e);
  }

  /** What an event changes in the timeline. */
  function apply(st, type, e) {
    const t = e.task ? task(st, e.task, e.agent) : null;
    switch (type) {
      case "run_started":
        st.status = "running";
        setBadge($("run-status"), "running");
        show($("cancel-run"), true);
        show($("resume-run"), false);
        show($("run-note"), false);
        break;
      case "run_continued":
        st.status = "running";
        setBadge($("run-status"), "running");
        show($("cancel-run"), true);
        show($("resume-run"), false);
        notice("continued (" + e.mode + "): " + (e.kept || []).length + " task(s) kept, " + (e.rerun || []).length + " to run");
        break;
      case "documents_loaded":
        notice("documents loaded: " + e.documents + " document(s), " + e.chunks + " chunk(s)" +
          ((e.skipped || []).length ? " · skipped: " + e.skipped.join("; ") : ""));
        break;
      case "task_started":
        t.status = "running";
        t.error = null;
        break;
      case "llm_request":
        if (t.status === "pending") t.status = "running";
        break;
      case "llm_response":
        t.calls += 1;
        t.input += e.input_tokens || 0;
        t.output += e.output_tokens || 0;
        break;
      case "call_replayed":
        t.notes.push(e.kind + " call answered from the recording");
        break;
      case "tool_call":
        t.tools.push({ tool: e.tool, ok: e.ok, ms: e.duration_ms, args: e.arguments, result: e.result });
        break;
      case "plugin_call":
        break;
      case "citations_checked":
        t.notes.push("citations: " + e.verified + "/" + e.total + " verified" + ((e.failed || []).length ? " — " + e.failed.length + " failed" : ""));
        break;
      case "statements_checked":
        t.notes.push("statements: " + e.statements + " claim(s), " + e.supported + " supported" + ((e.failed || []).length ? " — " + e.failed.length + " failed" : ""));
        break;
      case "output_invalid":
        t.notes.push("answer failed its schema (attempt " + e.attempt + ")");
        break;
      case "review_started":
        t.round = e.round;
        t.status = t.status === "pending" ? "running" : t.status;
        t.reviews.push({ round: e.round, reviewer: e.reviewer, approved: null, feedback: "" });
        break;
      case "review_verdict": {
        const r = t.reviews.find((x) => x.round === e.round) || (t.reviews.push({ round: e.round, reviewer: e.reviewer }), t.reviews[t.reviews.length - 1]);
        r.approved = e.approved;
        r.feedback = e.feedback;
        break;
      }
      case "review_rounds_exhausted":
        t.notes.push("review rounds used up (" + e.rounds + ")");
        break;
      case "task_delegated":
        t.notes.push("delegated by " + e.by + ": " + shorten(e.reason, 120));
        break;
      case "approval_requested":
        if (!e.answered) {
          t.status = "awaiting_approval";
          t.approval = e;
        }
        break;
      case "approval_decided":
        t.approval = null;
        t.notes.push("approval " + e.n + ": " + e.decision + (e.by ? " by " + e.by : "") + (e.feedback ? " — " + e.feedback : ""));
        if (e.decision !== "reject") t.status = "running";
        clear($("approval"));
        show($("approval"), false);
        break;
      case "limit_hit":
        (t ? t.notes : null)?.push("limit " + e.limit + " (" + e.value + ", " + e.key + "): " + e.action);
        if (!t) notice("limit " + e.limit + " (" + e.value + ", `" + e.key + "`): " + e.action, "warn");
        break;
      case "warning":
        if (t) t.notes.push("⚠ " + e.message);
        else notice("⚠ " + e.message, "warn");
        break;
      case "model_fallback":
        notice("model " + e.requested + " → " + e.used + " for " + e.agent + ": " + e.reason, "warn");
        break;
      case "context_cut":
        t.notes.push("prompt cut to fit " + e.window + " tokens");
        break;
      case "task_finished":
        t.status = e.status;
        t.input = e.input_tokens;
        t.output = e.output_tokens;
        t.duration = e.duration_ms;
        t.file = e.output_file || t.file;
        t.error = e.error || null;
        if (e.status !== "awaiting_approval") t.approval = null;
        break;
      case "report_written":
        show($("report-section"), true);
        $("report-summary").textContent = describeChecks(e.checks);
        break;
      case "run_finished":
        st.status = e.status;
        setBadge($("run-status"), e.status);
        show($("cancel-run"), LIVE.has(e.status));
        show($("resume-run"), RESUMABLE.has(e.status));
        // The detail has the files, the approvals and the totals.
        loadDetail(st);
        refreshRuns();
        break;
      default:
        break;
    }
    if (t) renderTask(st, t);
  }

  function describeChecks(c) {
    if (!c) return "";
    const parts = [];
    if (c.body) {
      parts.push("report: " + c.body.statements + " statement(s), " + c.body.cited + " cited, " + c.body.verified + " verified, " + c.body.supported + " supported" + (c.body.failed ? " — " + c.body.failed + " failed the check" : ""));
    }
    if (c.findings && c.findings.citations) {
      parts.push("findings: " + c.findings.citations + " citation(s), " + c.findings.verified + " verified" + (c.findings.failed ? ", " + c.findings.failed + " failed" : ""));
    }
    return parts.join(" · ");
  }

  function notice(text, kind) {
    $("run-notices").appendChild(h("li", { class: kind || "" }, text));
  }

  function renderTimeline(st) {
    for (const id of st.order) renderTask(st, st.tasks.get(id));
  }

  function renderTask(st, t) {
    const ol = $("timeline");
    let li = [...ol.children].find((x) => x.getAttribute("data-task") === t.id);
    const fresh = h("li", { class: "task task-" + t.status, "data-testid": "task", "data-task": t.id, "data-status": t.status },
      h("div", { class: "task-head" },
        badge(t.status, TASK_LABELS, "task-status"),
        h("span", { class: "task-id mono" }, t.id),
        t.agent ? h("span", { class: "muted" }, " · " + t.agent) : null,
        h("span", { class: "task-meta muted", "data-testid": "task-tokens" },
          (t.calls ? t.calls + " model call(s) · " : "") + fmtTokens(t.input) + " in / " + fmtTokens(t.output) + " out" + (t.duration !== null ? " · " + fmtMs(t.duration) : ""))),
      t.reviews.length ? h("ul", { class: "reviews", "data-testid": "task-reviews" },
        t.reviews.map((r) => h("li", { class: r.approved === true ? "ok" : r.approved === false ? "bad" : "" },
          "review round " + r.round + " (" + r.reviewer + "): " + (r.approved === null || r.approved === undefined ? "reviewing…" : r.approved ? "approved" : "revision asked"),
          r.feedback ? h("span", { class: "muted" }, " — " + shorten(r.feedback, 300)) : null))) : null,
      t.tools.length ? h("ul", { class: "tools", "data-testid": "task-tools" },
        t.tools.slice(-20).map((c) => h("li", { class: c.ok ? "" : "bad", title: shorten(c.result, 500) },
          h("span", { class: "mono" }, c.tool), h("span", { class: "muted mono" }, "(" + shorten(c.args, 80) + ")"), " ", c.ok ? "✓" : "✗", " ", h("span", { class: "muted" }, fmtMs(c.ms))))) : null,
      t.tools.length > 20 ? h("p", { class: "muted" }, t.tools.length - 20 + " earlier tool call(s) in the event log") : null,
      t.notes.length ? h("ul", { class: "task-notes muted" }, t.notes.slice(-8).map((n) => h("li", {}, n))) : null,
      t.error ? h("p", { class: "task-error", "data-testid": "task-error" }, t.error) : null,
      t.status === "awaiting_approval" ? h("p", { class: "await" }, "Waiting for a person: answer the request above.") : null);
    if (li) ol.replaceChild(fresh, li);
    else ol.appendChild(fresh);
    if (t.status === "awaiting_approval" && $("approval").hidden) {
      // The request's full text (the output to approve) is in the store.
      fetchApprovals(st);
    }
  }

  let approvalsPending = false;
  async function fetchApprovals(st) {
    if (approvalsPending) return;
    approvalsPending = true;
    try {
      const res = await api("GET", "/v1/runs/" + enc(st.id));
      if (st !== currentRun || res.status !== 200) return;
      st.detail = res.body;
      renderApproval(st, res.body);
    } finally {
      approvalsPending = false;
    }
  }

  function renderApproval(st, d) {
    const box = $("approval");
    const open = (d.approvals || []).filter((a) => !a.decision);
    if (!open.length) {
      if (!box.getAttribute("data-sent")) {
        clear(box);
        show(box, false);
      }
      return;
    }
    const a = open[0];
    if (box.getAttribute("data-task") === a.task && box.getAttribute("data-n") === String(a.n) && !box.hidden) return;
    clear(box);
    box.setAttribute("data-task", a.task);
    box.setAttribute("data-n", String(a.n));
    const req = a.request || {};
    box.appendChild(h("h2", {}, "Approval needed: ", h("span", { class: "mono" }, a.task), a.n > 1 ? " (request " + a.n + ")" : ""));
    box.appendChild(h("p", { class: "approval-message", "data-testid": "approval-message" }, req.message || (a.kind === "tool" ? "May this tool call run?" : "May this output stand?")));
    if (req.agent) box.appendChild(h("p", { class: "muted" }, "by " + req.agent));
    if (a.kind === "tool" || req.tool) {
      box.appendChild(h("div", { class: "approval-tool", "data-testid": "approval-tool" },
        h("span", { class: "mono strong" }, req.tool || "?"),
        h("pre", { class: "code" }, prettyJson(req.arguments))));
    }
    if (req.output !== undefined && req.output !== null) {
      const pre = h("pre", { class: "approval-output", "data-testid": "approval-output" }, req.output);
      box.appendChild(h("details", { open: true }, h("summary", {}, "The output to approve"), pre));
    }
    const feedback = h("textarea", { rows: "3", placeholder: "What should change? (sent to the author with “Revise”)", "data-testid": "approval-feedback" });
    const by = h("input", { type: "text", value: localStorage.getItem("troupe.by") || "", placeholder: "your name (kept with the answer)", "data-testid": "approval-by" });
    const status = h("span", { class: "muted", "data-testid": "approval-status" });
    const send = async (decision) => {
      if (decision === "revise" && !feedback.value.trim()) {
        status.textContent = "Write what should change before asking for a revision.";
        feedback.focus();
        return;
      }
      for (const b of box.querySelectorAll("button")) b.disabled = true;
      if (by.value.trim()) localStorage.setItem("troupe.by", by.value.trim());
      status.textContent = "sending…";
      const res = await api("POST", "/v1/runs/" + enc(st.id) + "/approvals/" + enc(a.task), {
        decision, feedback: feedback.value.trim() || null, by: by.value.trim() || "web",
      });
      if (res.status === 202) {
        clear(box);
        box.setAttribute("data-sent", "1");
        box.appendChild(h("p", { class: "approval-sent", "data-testid": "approval-sent" },
          "Answer sent (" + decision + "): the run " + (res.body && res.body.run === "recorded" ? "will go on when its process reads it" : "goes on") + "."));
        box.removeAttribute("data-task");
        setTimeout(() => { if (box.getAttribute("data-sent")) { box.removeAttribute("data-sent"); if (!box.getAttribute("data-task")) { clear(box); show(box, false); } } }, 4000);
        if (!st.streaming) reconnect(st, 200);
      } else {
        for (const b of box.querySelectorAll("button")) b.disabled = false;
        status.textContent = "";
        box.appendChild(errorBlock(res, "the answer was not taken"));
      }
    };
    box.appendChild(h("label", { class: "field" }, h("span", {}, "Feedback"), feedback));
    box.appendChild(h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", "data-testid": "approve", onclick: () => send("approve") }, "Approve"),
      h("button", { type: "button", "data-testid": "revise", onclick: () => send("revise") }, "Revise"),
      h("button", { type: "button", class: "danger", "data-testid": "reject", onclick: () => send("reject") }, "Reject"),
      by, status));
    box.removeAttribute("data-sent");
    show(box, true);
  }

  function prettyJson(s) {
    if (s === null || s === undefined) return "";
    try {
      return JSON.stringify(JSON.parse(s), null, 2);
    } catch (_) {
      return String(s);
    }
  }

  const MAX_LOG = 3000;
  function logEvent(st, seq, type, e) {
    st.events += 1;
    $("event-count").textContent = "(" + st.events + ")";
    const ol = $("event-log");
    ol.appendChild(h("li", { class: "ev ev-" + type, "data-testid": "event", "data-type": type },
      h("span", { class: "ev-seq mono" }, String(seq)),
      h("span", { class: "ev-time mono muted" }, e.elapsed_ms !== undefined ? fmtMs(e.elapsed_ms) : ""),
      h("span", { class: "ev-type mono" }, type),
      h("span", { class: "ev-text" }, describeEvent(type, e))));
    while (ol.children.length > MAX_LOG) ol.removeChild(ol.firstChild);
  }

  function describeEvent(type, e) {
    const who = (e.task ? "[" + e.task + "] " : "") + (e.agent ? e.agent + " " : "");
    switch (type) {
      case "run_started": return e.crew + " · " + e.tasks + " task(s) · " + e.agents + " agent(s)";
      case "task_started": return who + "started";
      case "llm_request": return who + "→ " + e.model + " (iteration " + e.iteration + ", " + e.messages + " messages, " + e.tools + " tools)";
      case "llm_response": return who + "← " + e.input_tokens + " in / " + e.output_tokens + " out, " + fmtMs(e.latency_ms) + (e.tool_calls ? ", " + e.tool_calls + " tool call(s)" : "");
      case "llm_retry": return who + "retry " + e.attempt + " in " + fmtMs(e.wait_ms) + ": " + e.reason;
      case "provider_fallback": return who + "server rejected " + e.feature + " as " + e.from + "; using " + e.to + " (" + shorten(e.reason, 160) + ")";
      case "tool_call": return who + e.tool + "(" + shorten(e.arguments, 120) + ") " + (e.ok ? "✓" : "✗") + " " + fmtMs(e.duration_ms);
      case "review_started": return who + "review round " + e.round + " by " + e.reviewer;
      case "review_verdict": return who + "round " + e.round + ": " + (e.approved ? "approved" : "revision asked") + (e.feedback ? " — " + shorten(e.feedback, 200) : "");
      case "approval_requested": return who + "asks a person (" + e.kind + " #" + e.n + ")" + (e.message ? ": " + e.message : "") + (e.answered ? " — already answered" : "");
      case "approval_decided": return who + e.decision + (e.by ? " by " + e.by : "") + (e.feedback ? " — " + e.feedback : "");
      case "task_finished": return who + e.status + " in " + fmtMs(e.duration_ms) + " · " + e.input_tokens + " in / " + e.output_tokens + " out" + (e.output_file ? " → " + e.output_file : "") + (e.error ? " — " + e.error : "");
      case "citations_checked": return who + e.verified + "/" + e.total + " citation(s) verified" + ((e.failed || []).length ? " — " + e.failed.join("; ") : "");
      case "statements_checked": return who + e.statements + " statement(s), " + e.cited + " cited, " + e.verified + " verified, " + e.supported + " supported" + ((e.failed || []).length ? " — " + e.failed.join("; ") : "");
      case "documents_loaded": return e.documents + " document(s), " + e.chunks + " chunk(s), " + e.tokens + " tokens";
      case "report_written": return (e.files || []).join(", ") + " — " + describeChecks(e.checks);
      case "run_finished": return e.status + " in " + fmtMs(e.duration_ms) + " · " + e.input_tokens + " in / " + e.output_tokens + " out" + (e.cost_usd !== null && e.cost_usd !== undefined ? " · " + fmtCost(e.cost_usd) : "");
      case "limit_hit": return who + e.limit + " = " + e.value + " (" + e.key + "): " + e.action;
      case "warning": return who + e.message;
      default: {
        const rest = Object.assign({}, e);
        for (const k of ["seq", "ts_ms", "elapsed_ms", "type"]) delete rest[k];
        return shorten(JSON.stringify(rest), 240);
      }
    }
  }

  async function cancelRun() {
    const st = currentRun;
    if (!st) return;
    $("cancel-run").disabled = true;
    const res = await api("POST", "/v1/runs/" + enc(st.id) + "/cancel");
    $("cancel-run").disabled = false;
    if (res.status !== 202) {
      const note = $("run-note");
      clear(note).appendChild(errorBlock(res, "cancel refused"));
      show(note, true);
    }
    await loadDetail(st);
    refreshRuns();
  }

  async function resumeRun() {
    const st = currentRun;
    if (!st) return;
    $("resume-run").disabled = true;
    const res = await api("POST", "/v1/runs/" + enc(st.id) + "/resume");
    $("resume-run").disabled = false;
    const note = $("run-note");
    if (res.status === 202) {
      show($("resume-run"), false);
      note.textContent = res.body.status === "queued" ? "Resumed: queued (position " + res.body.queue_position + ")." : "Resumed.";
      show(note, true);
      st.status = res.body.status;
      setBadge($("run-status"), res.body.status);
      reconnect(st, 100);
    } else {
      clear(note).appendChild(errorBlock(res, res.status === 429 ? "the queue is full: retry after " + (res.headers.get("Retry-After") || "?") + " s" : "resume refused"));
      show(note, true);
    }
    refreshRuns();
  }

  // ---- the report -----------------------------------------------------------------------

  async function openReport(st) {
    st.reportShown = true;
    const files = (st.detail && st.detail.files) || [];
    const [md, json] = await Promise.all([
      files.includes("report.md") ? api("GET", "/v1/runs/" + enc(st.id) + "/files/report.md") : Promise.resolve(null),
      files.includes("report.json") ? api("GET", "/v1/runs/" + enc(st.id) + "/files/report.json") : Promise.resolve(null),
    ]);
    if (st !== currentRun) return;
    const report = json && json.status === 200 && typeof json.body === "object" ? json.body : null;
    st.report = report;
    const cites = new Map();
    for (const c of (report && report.citations) || []) cites.set(Number(c.n), c);
    const art = clear($("report"));
    if (report && report.summary) {
      const s = report.summary;
      $("report-summary").textContent = s.citations + " citation(s): " + s.verified + " verified" +
        (s.unchecked ? ", " + s.unchecked + " unchecked" : "") + (s.failed ? ", " + s.failed + " failed" : "") +
        (s.body ? " · report: " + s.body.statements + " statement(s), " + s.body.supported + " supported" + (s.body.failed ? ", " + s.body.failed + " failed" : "") : "");
    }
    let text = md && md.status === 200 ? String(md.body) : report && report.body ? report.body.markdown : "";
    if (!text) {
      art.appendChild(h("p", { class: "muted" }, "The report is not available."));
    } else {
      art.appendChild(markdown(text, { cites, onCite: (n, el) => openCitation(st, cites.get(n), el) }));
    }
    show(art, true);
    $("open-report").textContent = "Reload the report";
  }

  /** The reason a citation failed, as the report words it. */
  function citationProblem(c) {
    const chk = c.check || {};
    const q = shorten(c.quote || "", 80);
    switch (chk.status) {
      case "verified": return null;
      case "unchecked": return "no words were quoted, so nothing was checked";
      case "empty_quote": return "the quote is empty";
      case "unknown_chunk": return chk.found_in ? "there is no chunk " + c.chunk + "; the quote “" + q + "” is in chunk " + chk.found_in : "there is no chunk " + c.chunk + " and no document contains “" + q + "”";
      case "not_in_chunk": return chk.found_in ? "chunk " + c.chunk + " does not contain “" + q + "”, but chunk " + chk.found_in + " does" : "chunk " + c.chunk + " does not contain “" + q + "”, and no other chunk does either";
      default: return "not verified (" + chk.status + ")";
    }
  }

  async function openCitation(st, c, anchor) {
    const box = clear($("passage"));
    show(box, true);
    for (const a of document.querySelectorAll(".cite.active")) a.classList.remove("active");
    if (anchor) anchor.classList.add("active");
    if (!c) {
      box.appendChild(h("p", { class: "muted" }, "This citation is not in report.json."));
      return;
    }
    const chk = c.check || {};
    const status = chk.status === "verified" ? "verified" : chk.status === "unchecked" ? "unchecked" : "failed";
    const checkLine = status === "verified" ? "✓ verified: the quoted words are in this passage"
      : status === "unchecked" ? "? unchecked: " + citationProblem(c)
        : "✗ not verified: " + citationProblem(c);
    box.appendChild(h("div", { class: "passage-head" },
      h("h3", {}, "[" + c.n + "] ", chk.document || c.chunk, chk.lines ? h("span", { class: "muted" }, " · " + chk.lines) : null),
      h("button", { type: "button", class: "link", "data-testid": "close-passage", title: "Close", onclick: () => { show(box, false); if (anchor) anchor.classList.remove("active"); } }, "✕")));
    box.appendChild(h("p", { class: "check check-" + status, "data-testid": "citation-check", "data-check": status }, checkLine));
    if (c.quote) box.appendChild(h("blockquote", { class: "quote", "data-testid": "citation-quote" }, "“" + c.quote + "”"));
    box.appendChild(h("p", { class: "muted mono small" }, c.chunk));
    const body = h("pre", { class: "passage-text", "data-testid": "passage-text" }, "loading the passage…");
    box.appendChild(body);
    const res = await api("GET", "/v1/runs/" + enc(st.id) + "/chunks/" + enc(c.chunk));
    clear(body);
    if (res.status !== 200) {
      body.replaceWith(errorBlock(res, "the passage cannot be shown"));
      return;
    }
    const p = res.body;
    box.querySelector("h3").replaceWith(h("h3", {}, "[" + c.n + "] ", p.document, h("span", { class: "muted", "data-testid": "passage-lines" }, " · lines " + p.first_line + "–" + p.last_line)));
    const marked = highlight(p.text, c.quote || "");
    append(body, marked.nodes);
    if (c.quote && !marked.found) {
      box.insertBefore(h("p", { class: "muted" }, "The quoted words are not in this passage."), body);
    }
    const first = body.querySelector("mark");
    if (first && first.scrollIntoView) first.scrollIntoView({ block: "nearest" });
  }

  /** Text normalised as the citation check compares it: case folded, typographic quotes and
   * dashes plain, each whitespace run one space — with, for each normalised code unit, the
   * index of the original character it came from. */
  function normalise(text) {
    let out = "";
    const map = [];
    let space = false;
    for (let i = 0; i < text.length;) {
      const cp = text.codePointAt(i);
      const ch = String.fromCodePoint(cp);
      const width = ch.length;
      if (/\s/u.test(ch)) {
        if (!space && out.length) {
          out += " ";
          map.push(i);
        }
        space = true;
      } else {
        space = false;
        let n = ch.toLowerCase();
        if (/[\u2018\u2019\u201A\u201B\u2032]/.test(n)) n = "'";
        else if (/[\u201C\u201D\u201E\u201F\u2033\u00AB\u00BB]/.test(n)) n = "\"";
        else if (/[\u2010-\u2015\u2212]/.test(n)) n = "-";
        for (let k = 0; k < n.length; k++) {
          out += n[k];
          map.push(i);
        }
      }
      i += width;
    }
    return { text: out, map };
  }

  /** `text` as nodes, the words of `quote` marked (`<mark>`), ignoring case and whitespace runs;
   * `…` (or `...`) in the quote stands for omitted words. */
  function highlight(text, quote) {
    const norm = normalise(text);
    const pieces = String(quote).split(/\u2026|\.\.\./).map((q) => normalise(q).text.trim()).filter((q) => q.length);
    const ranges = [];
    let from = 0;
    for (const q of pieces) {
      const at = norm.text.indexOf(q, from);
      if (at < 0) {
        ranges.length = 0;
        break;
      }
      const start = norm.map[at];
      const lastIdx = norm.map[at + q.length - 1];
      const end = lastIdx + String.fromCodePoint(text.codePointAt(lastIdx)).length;
      ranges.push([start, end]);
      from = at + q.length;
    }
    if (!ranges.length && pieces.length) {
      // Not in order: mark the whole quote where it is, if anywhere.
      const whole = normalise(String(quote)).text.trim();
      const at = whole ? norm.text.indexOf(whole) : -1;
      if (at >= 0) {
        const lastIdx = norm.map[at + whole.length - 1];
        ranges.push([norm.map[at], lastIdx + String.fromCodePoint(text.codePointAt(lastIdx)).length]);
      }
    }
    const nodes = [];
    let last = 0;
    for (const [s, e] of ranges) {
      if (s > last) nodes.push(document.createTextNode(text.slice(last, s)));
      nodes.push(h("mark", { "data-testid": "quote-mark" }, text.slice(s, e)));
      last = e;
    }
    if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
    return { nodes, found: ranges.length > 0 };
  }

  // ---- a small, safe Markdown ------------------------------------------------------------
  // Headings, paragraphs, lists (nested by indent), block quotes, fenced and indented code,
  // tables, rules; inline code, bold, italics, http(s) links, and citation markers `[n]`,
  // `[n?]`, `[n✗]`. Every piece of text becomes a text node.

  function markdown(src, ctx) {
    const lines = String(src).replace(/\r\n?/g, "\n").split("\n");
    const root = h("div", { class: "md" });
    blocks(lines, root, ctx);
    return root;
  }

  const RE_FENCE = /^\s{0,3}(```+|~~~+)\s*([\w+-]*)/;
  const RE_HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RE_RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
  const RE_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const RE_QUOTE = /^\s{0,3}>\s?(.*)$/;
  const RE_TABLE_SEP = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

  function blocks(lines, parent, ctx) {
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) {
        i++;
        continue;
      }
      let m;
      if ((m = line.match(RE_FENCE))) {
        const fence = m[1];
        const body = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
        i++;
        parent.appendChild(h("pre", { class: "code" }, h("code", m[2] ? { "data-lang": m[2] } : {}, body.join("\n"))));
        continue;
      }
      if ((m = line.match(RE_HEADING))) {
        const level = m[1].length;
        parent.appendChild(h("h" + Math.min(6, level + 1), { class: "md-h" + level }, inline(m[2], ctx)));
        i++;
        continue;
      }
      if (RE_RULE.test(line)) {
        parent.appendChild(h("hr"));
        i++;
        continue;
      }
      if (RE_QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && (m = lines[i].match(RE_QUOTE))) {
          body.push(m[1]);
          i++;
        }
        const bq = h("blockquote");
        blocks(body, bq, ctx);
        parent.appendChild(bq);
        continue;
      }
      if (line.includes("|") && i + 1 < lines.length && RE_TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
        const head = cells(line);
        const align = cells(lines[i + 1]).map((c) => (c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : ""));
        i += 2;
        const rows = [];
        while (i < lines.length && lines[i].includes("|") && lines[i].trim()) rows.push(cells(lines[i++]));
        const table = h("table", { class: "md-table" },
          h("thead", {}, h("tr", {}, head.map((c, k) => h("th", { class: align[k] ? "align-" + align[k] : null }, inline(c, ctx))))),
          h("tbody", {}, rows.map((r) => h("tr", {}, head.map((_, k) => h("td", { class: align[k] ? "align-" + align[k] : null }, inline(r[k] || "", ctx)))))));
        parent.appendChild(h("div", { class: "table-wrap" }, table));
        continue;
      }
      if (RE_ITEM.test(line)) {
        i = list(lines, i, parent, ctx);
        continue;
      }
      if (/^( {4}|\t)/.test(line)) {
        const body = [];
        while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || !lines[i].trim())) body.push(lines[i++].replace(/^( {4}|\t)/, ""));
        while (body.length && !body[body.length - 1].trim()) body.pop();
        parent.appendChild(h("pre", { class: "code" }, h("code", {}, body.join("\n"))));
        continue;
      }
      // A paragraph: up to a blank line or the start of another block.
      const para = [];
      while (i < lines.length && lines[i].trim() && !RE_FENCE.test(lines[i]) && !RE_HEADING.test(lines[i]) &&
        !RE_QUOTE.test(lines[i]) && !(para.length && RE_ITEM.test(lines[i])) && !RE_RULE.test(lines[i])) {
        para.push(lines[i++]);
      }
      if (!para.length) para.push(lines[i++]);
      const p = h("p");
      para.forEach((l, k) => {
        // A line ending in two spaces (or a backslash) breaks the line.
        const hard = /( {2,}|\\)$/.test(l) && k < para.length - 1;
        append(p, inline(l.trim().replace(/\\$/, ""), ctx));
        if (k < para.length - 1) p.appendChild(hard ? h("br") : document.createTextNode(" "));
      });
      parent.appendChild(p);
    }
  }

  function cells(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
    const out = [];
    let cur = "";
    let code = false;
    for (let k = 0; k < s.length; k++) {
      const ch = s[k];
      if (ch === "\\" && s[k + 1] === "|") {
        cur += "|";
        k++;
      } else if (ch === "`") {
        code = !code;
        cur += ch;
      } else if (ch === "|" && !code) {
        out.push(cur.trim());
        cur = "";
      } else {
        cur += ch;
      }
    }
    out.push(cur.trim());
    return out;
  }

  /** A list starting at line `i`; returns the line after it. */
  function list(lines, i, parent, ctx) {
    const first = lines[i].match(RE_ITEM);
    const indent = first[1].replace(/\t/g, "    ").length;
    const ordered = /\d/.test(first[2]);
    const el = h(ordered ? "ol" : "ul");
    if (ordered) {
      const start = parseInt(first[2], 10);
      if (start !== 1) el.setAttribute("start", String(start));
    }
    while (i < lines.length) {
      const m = lines[i].match(RE_ITEM);
      if (!m) break;
      const ind = m[1].replace(/\t/g, "    ").length;
      if (ind < indent || /\d/.test(m[2]) !== ordered) break;
      if (ind > indent) {
        // A nested list, under the last item.
        i = list(lines, i, el.lastElementChild || el, ctx);
        continue;
      }
      const item = h("li");
      const text = [m[3]];
      i++;
      // Continuation lines: indented, not an item of their own.
      while (i < lines.length && lines[i].trim() && !RE_ITEM.test(lines[i]) && /^\s+/.test(lines[i])) text.push(lines[i++].trim());
      text.forEach((t, k) => {
        append(item, inline(t, ctx));
        if (k < text.length - 1) item.appendChild(document.createTextNode(" "));
      });
      el.appendChild(item);
      // A blank line inside a list keeps it going when the next item follows.
      if (i < lines.length && !lines[i].trim() && i + 1 < lines.length && RE_ITEM.test(lines[i + 1])) {
        const nm = lines[i + 1].match(RE_ITEM);
        if (nm[1].replace(/\t/g, "    ").length >= indent) i++;
      }
    }
    parent.appendChild(el);
    return i;
  }

  const RE_INLINE = new RegExp([
    "(`+)([\\s\\S]*?[^`])\\1(?!`)", // 1,2 code
    "\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*", // 3 bold
    "__(?=\\S)([\\s\\S]*?\\S)__", // 4 bold
    "\\*(?=[^\\s*])([\\s\\S]*?[^\\s*])\\*", // 5 italic
    "(?<![\\p{L}\\p{N}])_(?=[^\\s_])([\\s\\S]*?[^\\s_])_(?![\\p{L}\\p{N}])", // 6 italic
    "\\[(\\d{1,5})(\\?|\u2717)?\\](?!\\()", // 7,8 citation marker
    "\\[([^\\]\\n]+)\\]\\((https?:\\/\\/[^\\s)]+)\\)", // 9,10 link
    "<(https?:\\/\\/[^\\s>]+)>", // 11 autolink
  ].join("|"), "u");

  function inline(text, ctx) {
    const out = [];
    let rest = String(text);
    while (rest.length) {
      const m = rest.match(RE_INLINE);
      if (!m) {
        out.push(document.createTextNode(unescapeMd(rest)));
        break;
      }
      if (m.index > 0) out.push(document.createTextNode(unescapeMd(rest.slice(0, m.index))));
      if (m[1] !== undefined) {
        out.push(h("code", {}, m[2].replace(/^ (.*) $/, "$1")));
      } else if (m[3] !== undefined || m[4] !== undefined) {
        out.push(h("strong", {}, inline(m[3] !== undefined ? m[3] : m[4], ctx)));
      } else if (m[5] !== undefined || m[6] !== undefined) {
        out.push(h("em", {}, inline(m[5] !== undefined ? m[5] : m[6], ctx)));
      } else if (m[7] !== undefined) {
        const n = Number(m[7]);
        const c = ctx && ctx.cites ? ctx.cites.get(n) : null;
        if (c) {
          const st = c.check && c.check.status;
          const kind = st === "verified" ? "verified" : st === "unchecked" ? "unchecked" : "failed";
          const a = h("a", {
            href: "#cite-" + n,
            class: "cite cite-" + kind,
            "data-testid": "citation",
            "data-n": String(n),
            "data-check": kind,
            title: (c.check && c.check.document ? c.check.document + " " + (c.check.lines || "") : c.chunk) + (c.quote ? " — “" + shorten(c.quote, 100) + "”" : ""),
          }, "[" + n + (m[8] || "") + "]");
          a.addEventListener("click", (e) => {
            e.preventDefault();
            ctx.onCite(n, a);
          });
          out.push(a);
        } else {
          out.push(document.createTextNode(m[0]));
        }
      } else if (m[9] !== undefined) {
        out.push(h("a", { href: m[10], rel: "noopener noreferrer nofollow", target: "_blank" }, inline(m[9], ctx)));
      } else if (m[11] !== undefined) {
        out.push(h("a", { href: m[11], rel: "noopener noreferrer nofollow", target: "_blank" }, m[11]));
      }
      rest = rest.slice(m.index + m[0].length);
    }
    return out;
  }

  function unescapeMd(s) {
    return s.replace(/\\([\\`*_{}\[\]()#+\-.!|>~])/g, "$1");
  }

  // ---- routing --------------------------------------------------------------------------

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  function route() {
    const hash = location.hash || "#/";
    const m = hash.match(/^#\/runs\/([^/]+)(\/report)?$/);
    if (m) {
      show($("view-new"), false);
      show($("view-run"), true);
      const id = decodeURIComponent(m[1]);
      showRun(id);
      if (m[2] && currentRun && !currentRun.reportShown) {
        currentRun.reportShown = true;
      }
      return;
    }
    stopRun();
    for (const row of document.querySelectorAll(".run-row.selected")) row.classList.remove("selected");
    show($("view-run"), false);
    show($("view-new"), true);
  }

  // ---- start ----------------------------------------------------------------------------

  $("crew-select").addEventListener("change", crewChosen);
  $("new-run-form").addEventListener("submit", startRun);
  $("refresh-runs").addEventListener("click", refreshRuns);
  $("cancel-run").addEventListener("click", cancelRun);
  $("resume-run").addEventListener("click", resumeRun);
  $("open-report").addEventListener("click", () => { if (currentRun) openReport(currentRun); });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshRuns(); });

  loadCrews();
  refreshRuns();
  scheduleRuns();
  route();
})();
