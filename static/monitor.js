// The live monitor card: start a monitor on a stream URL, follow its Server-Sent Events, and chart the
// speaking face's offset and the confidence of each window as they arrive.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const form = $("monitor-form");
  if (!form) return;
  const canvas = $("monitor-chart");
  const MAX_POINTS = 240; // about 20 minutes at a 5 s hop: older windows scroll off
  let points = [];
  let current = null; // {id, statusUrl, source: EventSource}

  function say(text) { $("monitor-status").textContent = text; }
  function fail(text) {
    const box = $("monitor-error");
    box.textContent = text;
    box.hidden = !text;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    fail("");
    const body = { source: $("monitor-source").value.trim(), expect_frames: Number($("monitor-expect").value) || 0 };
    fetch("/api/monitors", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then((r) => r.json().then((json) => ({ ok: r.ok, json })))
      .then(({ ok, json }) => {
        if (!ok) { fail(json.error ? json.error.message : "could not start the monitor"); return; }
        follow(json);
      })
      .catch(() => fail("the server did not answer"));
  });

  $("monitor-stop").addEventListener("click", () => {
    if (current) fetch(current.statusUrl, { method: "DELETE" });
  });

  function follow(monitor) {
    if (current) current.source.close();
    points = [];
    $("monitor-alerts").innerHTML = "";
    canvas.hidden = false;
    $("monitor-start").disabled = true;
    $("monitor-stop").disabled = false;
    const source = new EventSource(monitor.events_url);
    current = { id: monitor.monitor_id, statusUrl: monitor.status_url, source, expect: monitor.expect_frames };
    say("waiting for the first window…");
    source.addEventListener("reading", (e) => {
      const r = JSON.parse(e.data);
      points.push(r);
      if (points.length > MAX_POINTS) points.shift();
      const offset = r.offset_frames === null ? "–" : (r.offset_frames > 0 ? "+" : "") + r.offset_frames;
      say(`stream ${r.stream_end_s.toFixed(1)} s · faces ${r.faces === null ? "–" : r.faces} · offset ${offset} · ` +
          `confidence ${r.confidence === null ? "–" : r.confidence.toFixed(2)} · ${r.reliable ? "reliable" : "unreliable"} · ` +
          `latency ${r.latency_s.toFixed(1)} s · skipped ${r.skipped_so_far}`);
      draw();
    });
    for (const kind of ["alert", "back_in_sync", "reconnected", "disconnected", "skipped"]) {
      source.addEventListener(kind, (e) => note(kind, JSON.parse(e.data)));
    }
    source.addEventListener("ended", (e) => {
      const info = JSON.parse(e.data);
      note("ended", info);
      source.close();
      $("monitor-start").disabled = false;
      $("monitor-stop").disabled = true;
    });
  }

  function note(kind, event) {
    const item = document.createElement("li");
    const text = event.message || (kind === "reconnected" ? `reconnected after ${event.gap_s} s` : `${kind}${event.reason ? ": " + event.reason : ""}`);
    item.textContent = `${new Date().toLocaleTimeString()} · ${text}`;
    if (kind === "alert") item.className = "error";
    $("monitor-alerts").prepend(item);
  }

  // Offset (frames, left axis, dots: filled when reliable) and confidence (right axis, line) over stream time.
  function draw() {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 36;
    ctx.clearRect(0, 0, w, h);
    if (!points.length) return;
    const t0 = points[0].stream_end_s, t1 = Math.max(points[points.length - 1].stream_end_s, t0 + 1);
    const x = (t) => pad + (w - 2 * pad) * (t - t0) / (t1 - t0);
    const yOffset = (o) => h / 2 - (h / 2 - 12) * Math.max(-15, Math.min(15, o)) / 15;
    const cmax = Math.max(5, ...points.map((p) => p.confidence || 0));
    const yConf = (c) => h - 12 - (h - 24) * Math.max(0, c) / cmax;
    ctx.strokeStyle = "#d0d5dd"; ctx.beginPath(); ctx.moveTo(pad, h / 2); ctx.lineTo(w - pad, h / 2); ctx.stroke();
    if (current && current.expect) {
      ctx.setLineDash([4, 4]); ctx.strokeStyle = "#98a2b3"; ctx.beginPath();
      ctx.moveTo(pad, yOffset(current.expect)); ctx.lineTo(w - pad, yOffset(current.expect)); ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.fillStyle = "#667085"; ctx.font = "11px sans-serif";
    ctx.fillText("offset +15", 2, 12); ctx.fillText("-15", 2, h - 4); ctx.fillText(`conf ${cmax.toFixed(0)}`, w - pad + 2, 12);
    ctx.strokeStyle = "#12b76a"; ctx.beginPath();
    points.forEach((p, i) => { if (p.confidence === null) return; const f = i ? "lineTo" : "moveTo"; ctx[f](x(p.stream_end_s), yConf(p.confidence)); });
    ctx.stroke();
    for (const p of points) {
      if (p.offset_frames === null) continue;
      ctx.beginPath(); ctx.arc(x(p.stream_end_s), yOffset(p.offset_frames), 4, 0, 2 * Math.PI);
      ctx.strokeStyle = "#1570ef"; ctx.fillStyle = "#1570ef";
      if (p.reliable) ctx.fill(); else ctx.stroke();
    }
  }
})();
