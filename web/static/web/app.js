// Agent Chat pages: the JSON API with the page's CSRF token, and the notice line for refusals.
"use strict";

const AgentChat = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  function notice(text) {
    const box = document.getElementById("notice");
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  // The API's error body is {"detail", "code", "fields"}: show the detail, which names the fix.
  async function api(method, url, body) {
    const init = { method, headers: { Accept: "application/json", "X-CSRFToken": csrf() }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const problem = new Error(data.detail || `${method} ${url} answered ${response.status}`);
      notice(problem.message);
      throw problem;
    }
    notice("");
    return data;
  }

  function probes() {
    for (const button of document.querySelectorAll("[data-probe]")) {
      button.addEventListener("click", async () => {
        const alias = button.dataset.probe;
        const out = document.querySelector(`[data-probe-result="${CSS.escape(alias)}"]`);
        button.disabled = true;
        out.textContent = "probing…";
        try {
          const result = await api("POST", `/api/config/routes/${encodeURIComponent(alias)}/probe/`);
          out.textContent = result.probe?.ok ? "ok" : `failed: ${result.probe?.message || result.status || ""}`;
        } catch (error) {
          out.textContent = error.message;
        } finally {
          button.disabled = false;
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", probes);
  return { api, notice };
})();
