// The chat page: send a turn, stream its reply over SSE, stop, regenerate, edit, switch branches.
//
// The server renders everything stored, including an open run's text so far and the index of the
// last event it read (data-after). The stream resumes after that index, so a reload mid-stream
// shows every character once. Streamed text is added as text (never parsed as HTML); when the run
// ends, htmx swaps in the server's safe Markdown rendering of the stored conversation.
"use strict";

(() => {
  const { api, notice } = AgentChat;
  const conversation = document.getElementById("main");
  const composer = document.querySelector("[data-composer]");
  const textarea = document.getElementById("composer");
  const send = document.querySelector("[data-send]");
  const stop = document.querySelector("[data-stop]");
  let source = null;
  let runId = null;

  const sessionId = () => conversation.dataset.session;
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`);

  function streaming(on) {
    send.hidden = on;
    stop.hidden = !on;
  }

  // After a change the server decides (a new turn, a branch switch), show the conversation it renders.
  function refresh(path) {
    const url = path || window.location.pathname;
    if (url !== window.location.pathname) {
      window.location.assign(url);
      return;
    }
    htmx.ajax("GET", url, { target: "#main", swap: "innerHTML" }).then(() => {
      decorate();
      follow();
    });
  }

  function toolCard(type, payload) {
    const card = document.createElement("details");
    card.className = "tool";
    const summary = document.createElement("summary");
    summary.textContent = type === "tool_call" ? `Tool call: ${payload.name || ""}` : "Tool result";
    const body = document.createElement("pre");
    body.textContent = JSON.stringify(type === "tool_call" ? payload.arguments : payload.content, null, 2);
    card.append(summary, body);
    if (type === "tool_call") card.dataset.toolCall = payload.id || "";
    return card;
  }

  // A team member's work for one of the lead's calls, nested in that call's card (the server renders the
  // same markup, web/_delegation.html, on a reload). Its text is added as text, never parsed as HTML.
  function delegationCard(tools, callId, member) {
    const found = tools.querySelector(`[data-delegation="${CSS.escape(callId)}"]`);
    if (found) return found;
    const card = document.createElement("details");
    card.className = "delegated";
    card.dataset.delegation = callId;
    card.open = true;
    const summary = document.createElement("summary");
    const who = document.createElement("span");
    who.dataset.member = "";
    who.textContent = member || "a team member";
    const status = document.createElement("span");
    status.dataset.delegationStatus = "";
    status.textContent = "running";
    summary.append(who, "'s work (", status, ")");
    const text = document.createElement("div");
    text.className = "stream-text";
    text.dataset.delegationText = "";
    card.append(summary, text);
    (tools.querySelector(`[data-tool-call="${CSS.escape(callId)}"]`) || tools).append(card);
    return card;
  }

  function delegated(tools, payload) {
    const card = delegationCard(tools, payload.tool_call_id || "", payload.member);
    const event = payload.event || {};
    const body = event.payload || {};
    if (event.type === "text_delta") {
      card.querySelector("[data-delegation-text]").append(document.createTextNode(body.text || ""));
    } else if (event.type === "run_finished") {
      card.querySelector("[data-delegation-status]").textContent = body.status || "completed";
    }
  }

  // A call the run waits on: approve and deny buttons for one that needs an approval (the server renders
  // the same markup, web/_pending_call.html, on a reload).
  function pendingCall(call) {
    const row = document.createElement("div");
    row.className = "pending-call";
    row.dataset.call = call.id;
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", `Tool call ${call.name} waiting`);
    const label = document.createElement("span");
    const approval = call.waits_for === "approval";
    label.textContent = `${call.name} ${approval ? "waits for your approval" : "waits for an API client's result"}`;
    row.append(label);
    if (approval) {
      for (const [decision, text] of [["true", "Approve"], ["false", "Deny"]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.decide = decision;
        button.textContent = text;
        row.append(" ", button);
      }
    }
    return row;
  }

  async function decide(button) {
    const row = button.closest("[data-call]");
    if (!row || !runId) return;
    for (const each of row.querySelectorAll("button")) each.disabled = true;
    try {
      await api("POST", `/api/runs/${runId}/approve/`, { decisions: { [row.dataset.call]: button.dataset.decide === "true" } });
      row.remove();
    } catch {
      for (const each of row.querySelectorAll("button")) each.disabled = false;
    }
  }

  // While a reply streams its end stays in view, unless the person has scrolled up to read: the pane that
  // scrolls (the conversation from 768 px, the window on a phone) is followed only while it is at its end.
  function scroller(element) {
    for (let node = element.parentElement; node; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowY;
      if ((overflow === "auto" || overflow === "scroll") && node.scrollHeight > node.clientHeight) return node;
    }
    return document.scrollingElement;
  }
  let following = false;
  function grow(run, change) {
    const pane = scroller(run);
    const atEnd = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 96;
    change();
    if (!atEnd || following) return;
    following = true; // one scroll per frame, however many deltas arrived in it
    const top = pane.scrollTop;
    requestAnimationFrame(() => {
      following = false;
      if (pane.scrollTop < top) return; // scrolled up in the meantime: they are reading
      run.scrollIntoView({ block: "end" });
    });
  }

  // Follow the open run, if the page shows one, from the event after the last one rendered.
  function follow() {
    const run = document.getElementById("run");
    if (!run || source) return;
    runId = run.dataset.run;
    streaming(true);
    const text = run.querySelector("[data-text]");
    const reasoning = run.querySelector("[data-reasoning]");
    const tools = run.querySelector("[data-tools]");
    const pending = run.querySelector("[data-pending]");
    pending.addEventListener("click", (event) => {
      const button = event.target.closest("[data-decide]");
      if (button) decide(button);
    });
    const status = run.querySelector("[data-run-status]");
    source = new EventSource(`/api/runs/${runId}/stream/?after=${encodeURIComponent(run.dataset.after || "0")}`);
    const data = (event) => {
      run.dataset.after = event.lastEventId;
      try { return JSON.parse(event.data); } catch { return {}; }
    };
    const writing = () => { status.textContent = "writing…"; };
    source.addEventListener("run_started", (e) => { data(e); writing(); });
    source.addEventListener("text_delta", (e) => {
      const delta = data(e).text || "";
      // After a reload mid-stream no run_started comes again: the first text says the reply is being written.
      if (status.textContent !== "writing…") writing();
      grow(run, () => text.append(document.createTextNode(delta)));
    });
    source.addEventListener("reasoning", (e) => {
      const delta = data(e).text || "";
      grow(run, () => {
        reasoning.append(document.createTextNode(delta));
        reasoning.closest("details").hidden = false;
      });
    });
    source.addEventListener("tool_call", (e) => {
      const call = data(e);
      const card = toolCard("tool_call", call);
      // Work a member began before its call's card arrived moves under the card.
      const early = tools.querySelector(`:scope > [data-delegation="${CSS.escape(call.id || "")}"]`);
      if (early) card.append(early);
      grow(run, () => tools.append(card));
    });
    source.addEventListener("delegate", (e) => {
      const payload = data(e);
      grow(run, () => delegated(tools, payload));
    });
    source.addEventListener("tool_result", (e) => {
      const result = data(e);
      grow(run, () => tools.append(toolCard("tool_result", result)));
      pending.querySelector(`[data-call="${CSS.escape(result.tool_call_id || "")}"]`)?.remove();
    });
    source.addEventListener("tools_pending", (e) => {
      pending.replaceChildren(...(data(e).calls || []).map(pendingCall));
      status.textContent = "waiting…";
    });
    source.addEventListener("error", (e) => {
      if (e.data) notice(data(e).message || "The model answered with an error.");
    });
    source.addEventListener("run_finished", (e) => {
      data(e);
      source.close();
      source = null;
      runId = null;
      streaming(false);
      refresh();
    });
  }

  async function turn(text) {
    let id = sessionId();
    if (!id) {
      const route = composer.querySelector('input[name="route"]').value || null;
      // No title: the server takes it from the first message, as plain text (its Markdown dropped).
      const session = await api("POST", "/api/sessions/", { route });
      id = session.id;
    }
    await api("POST", `/api/sessions/${id}/turns/`, { text, client_id: newId() });
    textarea.value = "";
    if (sessionId() === id) refresh();
    else refresh(`/chat/${id}/`);
  }

  async function cancel() {
    if (!runId) return;
    stop.disabled = true;
    try {
      await api("POST", `/api/runs/${runId}/cancel/`, { reason: "stopped in the chat page" });
    } finally {
      stop.disabled = false;
    }
  }

  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textarea.value;
    if (!text.trim() || source) return;
    send.disabled = true;
    try { await turn(text); } catch { /* the notice says why */ } finally { send.disabled = false; }
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && source) {
      event.preventDefault();
      cancel();
    }
  });
  stop.addEventListener("click", cancel);

  async function copy(button, text) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  function editForm(article, seq) {
    if (article.querySelector(".edit-form")) return;
    const form = document.createElement("form");
    form.className = "edit-form";
    const label = document.createElement("label");
    label.textContent = `Edit message ${seq}`;
    label.className = "visually-hidden";
    const area = document.createElement("textarea");
    area.id = `edit-${seq}`;
    label.htmlFor = area.id;
    area.value = article.querySelector("template[data-source]").content.textContent;
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "primary";
    save.textContent = "Send edit";
    const cancelEdit = document.createElement("button");
    cancelEdit.type = "button";
    cancelEdit.textContent = "Cancel";
    cancelEdit.addEventListener("click", () => form.remove());
    form.append(label, area, save, cancelEdit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api("POST", `/api/sessions/${sessionId()}/messages/${seq}/edit/`, { text: area.value, client_id: newId() });
        refresh();
      } catch { /* the notice says why */ }
    });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
      if (event.key === "Escape") { form.remove(); }
    });
    article.querySelector(".md").after(form);
    area.focus();
  }

  // Buttons of the rendered messages (the conversation is re-rendered by htmx, so bind by delegation).
  conversation.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const article = button.closest("article");
    try {
      if (button.matches("[data-copy]")) {
        await copy(button, (article.querySelector("template[data-source]")?.content.textContent) ?? article.querySelector(".md").innerText);
      } else if (button.matches("[data-copy-code]")) {
        await copy(button, button.parentElement.querySelector("code").innerText);
      } else if (button.matches("[data-regenerate]")) {
        await api("POST", `/api/sessions/${sessionId()}/messages/${button.dataset.regenerate}/regenerate/`);
        refresh();
      } else if (button.matches("[data-edit]")) {
        editForm(article, button.dataset.edit);
      } else if (button.matches("[data-switch]") && button.dataset.switch) {
        const target = button.dataset.switch;
        const found = await api("GET", `/api/sessions/${sessionId()}/messages/${target}/siblings/`);
        const leaf = found.siblings.find((s) => String(s.seq) === target).leaf;
        await api("POST", `/api/sessions/${sessionId()}/leaf/`, { seq: leaf });
        refresh();
      }
    } catch { /* the notice says why */ }
  });

  // A copy button on every code block.
  function decorate() {
    for (const pre of conversation.querySelectorAll(".md pre")) {
      if (pre.querySelector("[data-copy-code]")) continue;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.dataset.copyCode = "";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy the code");
      pre.prepend(button);
    }
    const last = conversation.querySelector("article:last-of-type");
    if (last) last.scrollIntoView({ block: "end" });
  }

  // On a phone the conversation list starts folded, so the conversation comes first.
  const list = document.querySelector(".session-list");
  if (list && window.matchMedia("(max-width: 767px)").matches) list.open = false;

  decorate();
  follow();
  textarea.focus();
})();
