// The callbox page: shows the two MJPEG streams, refreshes the state and
// figures from api/status every second, and sends the buttons as POSTs.
// A ?token=... in the page's address is passed on to the streams and the
// API, for viewers that cannot do Basic auth.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url);

  // A stream that breaks (the daemon restarted) is opened again.
  for (const img of document.querySelectorAll("img[data-stream]")) {
    let tries = 0;
    const open = () => { img.src = withToken(img.dataset.stream + (tries++ ? "?retry=" + Date.now() : "")); };
    img.addEventListener("error", () => setTimeout(open, 2000));
    open();
  }

  const fmt = (v, unit, digits = 1) => (v === undefined || v === null ? "–" : Number(v).toFixed(digits) + (unit ? " " + unit : ""));
  const fill = (table, rows) => {
    const body = document.createElement("tbody");
    for (const [k, v] of rows) {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.textContent = k;
      tr.appendChild(th);
      tr.insertCell().textContent = v;
    }
    table.replaceChild(body, table.tBodies[0]);
  };

  function show(st) {
    const ph = st.phone || {};
    const state = ph.state || "unknown";
    $("name").textContent = st.name || "callbox";
    document.title = "callbox " + (st.name || "");
    $("state").textContent = state;
    $("state").dataset.state = state.replace(/ /g, "-");
    const peer = (ph.peer && ph.peer.name) || ph.peer_hello_name || "";
    $("peer-name").textContent = state === "idle" ? (ph.last_end ? "last call: " + ph.last_end : "") : peer;
    $("peer-view").classList.toggle("off", state !== "in call");
    $("call").disabled = state !== "idle";
    targets(st.call_targets || [], st.default_target || "");
    $("hangup").disabled = state === "idle";
    doorButtons(st, ph, state);

    const c = ph.call;
    let rows;
    if (c) {
      rows = [
        ["with", peer],
        ["duration", fmt(c.seconds, "s", 0)],
        ["video in / out", fmt(c.in.video_fps, "fps") + " / " + fmt(c.out.video_fps, "fps")],
        ["video kbit/s in / out", fmt(c.in.video_kbps, "", 0) + " / " + fmt(c.out.video_kbps, "", 0)],
        ["video latency p50 / p99", fmt(c.in.video_latency.p50_ms, "ms") + " / " + fmt(c.in.video_latency.p99_ms, "ms")],
        ["audio latency p50 / p99", fmt(c.in.audio_latency.p50_ms, "ms") + " / " + fmt(c.in.audio_latency.p99_ms, "ms")],
        ["round trip", fmt(c.rtt_ms, "ms")],
        ["video drops in / out", c.in.video_drops + " / " + c.out.video_drops],
        ["audio drops in / out", c.in.audio_drops + " / " + c.out.audio_drops],
      ];
    } else {
      rows = [["call", "none"]];
    }
    const pl = st.playout || {};
    rows.push(["playout depth", fmt(pl.depth_ms, "ms")], ["playout underruns", String(pl.underruns ?? "–")]);
    fill($("figures"), rows);
    fill($("devices"), [
      ["camera", st.camera || "–"],
      ["microphone", st.microphone || "–"],
      ["speaker", st.speaker || "–"],
      ["button and LED", st.gpio || "ok"],
      ...(st.door ? [["door", doorText(st.door)]] : []),
      ["LED", st.led || "–"],
      ["pairing", pairingText(st.pairing)],
      ["discovery", st.discovery || "–"],
      ["version", st.version || "–"],
    ]);
    // Each paired box and when this one last saw it, as the daemon words
    // it ("seen 2 min ago by discovery at ...", "never seen since start").
    const peers = st.peers || [];
    fill($("peers"), peers.length ? peers.map((p) => [p.name, p.summary]) : [["–", "no paired box"]]);
  }

  // The peers and groups this box can call, the button's first; the
  // choice stays while the list is the same.
  function targets(names, def) {
    const sel = $("target");
    const key = names.join("\n") + "\n" + def;
    if (sel.dataset.key === key) return;
    const chosen = sel.value;
    sel.dataset.key = key;
    sel.replaceChildren();
    const ordered = def ? [def, ...names.filter((n) => n !== def)] : names;
    for (const n of ordered) {
      const o = document.createElement("option");
      o.value = n;
      o.textContent = n === def ? n + " (button)" : n;
      sel.appendChild(o);
    }
    if (ordered.includes(chosen)) sel.value = chosen;
    sel.hidden = ordered.length < 2;
  }

  // This box's door opener, and the peer's while in a call with one.
  function doorButtons(st, ph, state) {
    $("door").hidden = !st.door;
    $("door").disabled = !st.door || st.door.active;
    $("door-remote").hidden = !(ph.peer_door && state === "in call");
    if (ph.peer && ph.peer.name) $("door-remote").textContent = "Open " + ph.peer.name + "'s door";
  }

  function doorText(d) {
    let t = d.line + ": " + d.state + ", " + d.openings + " openings, " + d.refusals + " refused";
    if (d.last) t += "; last by " + d.last.who + " at " + new Date(d.last.at).toLocaleTimeString();
    return t;
  }

  function pairingText(p) {
    if (!p || !p.state || p.state === "off") return "–";
    let t = p.state;
    if (p.peer) t += " with " + p.peer + " (code " + p.code + ")";
    if (p.error) t += ": " + p.error;
    return t;
  }

  async function refresh() {
    try {
      const r = await fetch(withToken("api/status"), { headers, cache: "no-store" });
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      show(await r.json());
    } catch (e) {
      $("state").textContent = "unreachable";
      $("state").dataset.state = "unreachable";
    }
  }
  // Who rang: the newest 12, each with its picture; asked for every 10 s.
  let ringsKey = "";
  async function refreshRings() {
    try {
      const r = await fetch(withToken("api/rings"), { headers, cache: "no-store" });
      if (!r.ok) return;
      const list = (await r.json()) || [];
      const key = list.map((x) => x.id).join(",");
      if (key === ringsKey) return;
      ringsKey = key;
      const ul = $("rings");
      ul.replaceChildren();
      for (const x of list.slice(0, 12)) {
        const li = document.createElement("li");
        if (x.bytes > 0) {
          const img = document.createElement("img");
          img.src = withToken("rings/" + encodeURIComponent(x.id) + ".jpg");
          img.alt = "picture of the ring";
          img.loading = "lazy";
          li.appendChild(img);
        }
        const p = document.createElement("span");
        p.textContent = new Date(x.time).toLocaleString() + " · " + (x.kind === "incoming" ? "call from " : "button, called ") + x.peer;
        li.appendChild(p);
        ul.appendChild(li);
      }
      $("rings-box").hidden = list.length === 0;
    } catch (e) { /* the status line shows an unreachable daemon */ }
  }
  const ringLoop = async () => { await refreshRings(); setTimeout(ringLoop, 10000); };
  ringLoop();
  const loop = async () => { await refresh(); setTimeout(loop, 1000); };
  loop();

  async function post(path, body, done) {
    $("message").textContent = "";
    try {
      const r = await fetch(path, {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json" },
        body: JSON.stringify(body || {}),
      });
      if (!r.ok) {
        let why = r.status + " " + r.statusText;
        try { why = (await r.json()).error || why; } catch (e) { /* not JSON */ }
        $("message").textContent = why;
      } else if (done) {
        $("message").textContent = done;
      }
    } catch (e) {
      $("message").textContent = String(e);
    }
    refresh();
  }
  $("call").addEventListener("click", () => post("api/call", $("target").value ? { peer: $("target").value } : {}));
  $("hangup").addEventListener("click", () => post("api/hangup"));
  $("pair").addEventListener("click", () => post("api/press", { long: true }));
  $("door").addEventListener("click", () => post("api/door/open", {}, "door opening"));
  $("door-remote").addEventListener("click", () => post("api/door/open", { remote: true }, "their door is opening"));
})();
