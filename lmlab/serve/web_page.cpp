// The web chat page `lmlab serve` answers at "/": one static page (no build step, no external
// fetches) that streams a conversation from /v1/chat/completions, shows tokens per second, and lets
// the user set the system prompt and the temperature.
#include "lmlab/serve/web_page.h"

namespace lmlab::serve {

const std::string& web_page() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lmlab chat</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 820px; margin: 0 auto; padding: 1em; color: #222; }
  header { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; margin-bottom: .5em; }
  header h1 { font-size: 1.2em; margin: 0; }
  #settings { display: flex; gap: .8em; flex-wrap: wrap; font-size: .9em; }
  #settings textarea { width: 30em; height: 2.4em; }
  #log { border: 1px solid #ccc; border-radius: 6px; padding: .8em; min-height: 18em; overflow-y: auto; max-height: 65vh; }
  .msg { margin: .4em 0; white-space: pre-wrap; }
  .user { color: #0b4f9c; }
  .assistant { color: #222; }
  .error { color: #b00020; }
  form { display: flex; gap: .5em; margin-top: .6em; }
  #input { flex: 1; font-size: 1em; padding: .4em; }
  #stats { font-size: .85em; color: #666; }
</style>
</head>
<body>
<header>
  <h1>lmlab chat</h1><span id="model"></span><span id="stats"></span>
</header>
<div id="settings">
  <label>System prompt <textarea id="system"></textarea></label>
  <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  <label>Max tokens <input id="max_tokens" type="number" min="1" value="256"></label>
  <label>API key <input id="key" type="password" size="10" placeholder="(if set)"></label>
  <button id="reset" type="button">Reset</button>
</div>
<div id="log"></div>
<form id="form"><input id="input" autocomplete="off" placeholder="Message"><button id="send">Send</button></form>
<script>
"use strict";
const log = document.getElementById("log"), input = document.getElementById("input");
const stats = document.getElementById("stats");
let history = [], busy = false;
function add(role, text) {
  const d = document.createElement("div");
  d.className = "msg " + role;
  d.textContent = (role === "user" ? "> " : "") + text;
  log.appendChild(d);
  log.scrollTop = log.scrollHeight;
  return d;
}
const auth = () => { const k = document.getElementById("key").value; return k ? { "Authorization": "Bearer " + k } : {}; };
fetch("/v1/models", { headers: auth() }).then(r => r.json()).then(j => {
  document.getElementById("model").textContent = j.data[0].id + " (context " + j.data[0].context_length + ")";
}).catch(() => {});
document.getElementById("reset").onclick = () => { history = []; log.textContent = ""; stats.textContent = ""; };
document.getElementById("form").onsubmit = async (ev) => {
  ev.preventDefault();
  const text = input.value.trim();
  if (!text || busy) return;
  busy = true;
  input.value = "";
  add("user", text);
  history.push({ role: "user", content: text });
  const sys = document.getElementById("system").value.trim();
  const messages = (sys ? [{ role: "system", content: sys }] : []).concat(history);
  const out = add("assistant", "");
  let reply = "", tokens = 0, t0 = 0;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, auth()),
      body: JSON.stringify({ messages, stream: true,
        temperature: parseFloat(document.getElementById("temperature").value),
        max_tokens: parseInt(document.getElementById("max_tokens").value, 10) })
    });
    if (!res.ok) {
      const e = await res.json().catch(() => ({}));
      throw new Error((e.error && e.error.message) || res.statusText);
    }
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, k);
        buf = buf.slice(k + 2);
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        const piece = j.choices[0].delta.content;
        if (piece) {
          if (!t0) t0 = performance.now();
          reply += piece;
          tokens++;
          out.textContent = reply;
          log.scrollTop = log.scrollHeight;
          const s = (performance.now() - t0) / 1000;
          if (s > 0) stats.textContent = (tokens / s).toFixed(1) + " chunks/s";
        }
      }
    }
    history.push({ role: "assistant", content: reply });
    document.body.dataset.state = "replied";
  } catch (e) {
    out.className = "msg error";
    out.textContent = "error: " + e.message;
    history.pop();
    document.body.dataset.state = "error";
  }
  busy = false;
};
// A link can carry a first message: /?q=TEXT[&temperature=T][&max_tokens=N] sends it on load.
const params = new URLSearchParams(location.search);
for (const k of ["temperature", "max_tokens"]) if (params.has(k)) document.getElementById(k).value = params.get(k);
if (params.get("q")) { input.value = params.get("q"); document.getElementById("form").requestSubmit(); }
</script>
</body>
</html>
)HTML";
  return page;
}

}  // namespace lmlab::serve
