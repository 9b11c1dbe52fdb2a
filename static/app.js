// The upload page: send the video to /api/jobs, follow the job's progress, then show its result.
(function () {
  "use strict";

  const LABELS = { syncnet: "SyncNet", fcn: "FCN-SyncNet", landmark: "Landmark" };
  const POLL_MS = 500;

  const $ = (id) => document.getElementById(id);
  const form = $("upload-form");
  const fileInput = $("video");
  const button = $("analyze-button");
  const maxBytes = Number(form.dataset.maxBytes) || null;
  let lastResult = null;

  // -- API key: sent as a Bearer token when the server asks for one; kept for this tab only ------------------

  const keyInput = $("api-key");
  keyInput.value = sessionStorage.getItem("syncnet_fcn_api_key") || "";
  keyInput.addEventListener("change", () => sessionStorage.setItem("syncnet_fcn_api_key", keyInput.value.trim()));
  function authHeaders() {
    const key = keyInput.value.trim();
    return key ? { Authorization: "Bearer " + key } : {};
  }
  function askForKey() {
    $("api-key-row").hidden = false;
    keyInput.focus();
  }

  // -- engines: ask the server which can run, check those by default --------------------------------------

  fetch("/api/health")
    .then((r) => r.json())
    .then((health) => {
      if (health.api_key_required) $("api-key-row").hidden = false;
      const box = $("engine-choices");
      $("engines-loading").remove();
      for (const [name, status] of Object.entries(health.engines)) {
        const label = document.createElement("label");
        label.className = "engine-choice" + (status.available ? "" : " unavailable");
        label.title = status.reason || "";
        const input = document.createElement("input");
        input.type = "checkbox";
        input.name = "engines";
        input.value = name;
        input.disabled = !status.available;
        input.checked = status.available;
        label.append(input, " " + (LABELS[name] || name));
        if (!status.available) {
          const why = document.createElement("span");
          why.className = "why";
          why.textContent = "(unavailable: " + shortReason(status.reason) + ")";
          label.append(" ", why);
        }
        box.append(label);
      }
    })
    .catch(() => { $("engines-loading").textContent = "could not reach the server"; });

  function shortReason(reason) {
    if (!reason) return "not installed";
    if (/weights/i.test(reason)) return "weights missing";
    return reason.length > 40 ? reason.slice(0, 40) + "…" : reason;
  }

  // -- file choice and drag and drop -----------------------------------------------------------------------

  const drop = $("file-drop");
  fileInput.addEventListener("change", showFileName);
  ["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, (ev) => { ev.preventDefault(); drop.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((e) => drop.addEventListener(e, () => drop.classList.remove("dragging")));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer.files.length) { fileInput.files = ev.dataTransfer.files; showFileName(); }
  });

  function showFileName() {
    const file = fileInput.files[0];
    $("file-label").textContent = file ? `${file.name} · ${size(file.size)}` : "Choose a video";
  }

  // -- submit: upload with progress, then poll the job ----------------------------------------------------

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = fileInput.files[0];
    hideError();
    if (!file) return showError("Choose a video first.");
    if (maxBytes && file.size > maxBytes) {
      return showError(`This file is ${size(file.size)}; the limit is ${size(maxBytes)}.`);
    }
    const data = new FormData();
    data.append("video", file, file.name);
    const engines = [...form.querySelectorAll("input[name=engines]:checked")].map((i) => i.value);
    if (engines.length) data.append("engines", engines.join(","));
    data.append("max_offset", $("max-offset").value || "15");

    busy(true);
    setProgress(0, "uploading…");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.responseType = "json";
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setProgress(0.1 * e.loaded / e.total, `uploading ${Math.round(100 * e.loaded / e.total)}%`);
    };
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status !== 202) return fail(body, xhr.status);
      poll(body.status_url);
    };
    xhr.onerror = () => fail({ error: { message: "The upload failed (connection lost or file too large)." } });
    xhr.send(data);
  });

  function poll(url) {
    fetch(url, { headers: authHeaders() })
      .then((r) => r.json().then((body) => ({ status: r.status, body })))
      .then(({ status, body }) => {
        if (status !== 200) return fail(body, status);
        if (body.state === "done") { setProgress(1, "done"); busy(false); return showResult(body.result); }
        if (body.state === "error") return fail(body);
        setProgress(0.1 + 0.9 * body.progress, `${body.stage} ${Math.round(100 * body.progress)}%`);
        setTimeout(() => poll(url), POLL_MS);
      })
      .catch(() => fail({ error: { message: "Lost contact with the server." } }));
  }

  function fail(body, status) {
    busy(false);
    $("progress").hidden = true;
    let message = (body && body.error && body.error.message) || `The server answered ${status || "with an error"}.`;
    if (status === 401) {
      message = "This server requires an API key and " + (keyInput.value.trim() ? "the one given is wrong" : "none was given")
        + ": enter it above and press Analyze again. (" + message + ")";
      askForKey();
    }
    showError(message);
  }

  // -- rendering the result --------------------------------------------------------------------------------

  function showResult(result) {
    lastResult = result;
    window.syncResult = result; // handy in the console
    $("result-video").textContent = result.video;

    const cards = $("engine-cards");
    cards.replaceChildren();
    for (const [name, report] of Object.entries(result.engines)) cards.append(engineCard(name, report));

    const errors = Object.entries(result.engine_errors || {});
    $("engine-errors").textContent = errors.length
      ? "Not run: " + errors.map(([n, why]) => `${LABELS[n] || n} (${why})`).join("; ")
      : "";

    const body = $("result-table").querySelector("tbody");
    body.replaceChildren();
    for (const row of result.summary) {
      const tr = document.createElement("tr");
      if (row.main) tr.className = "main";
      tr.dataset.engine = row.engine;
      tr.dataset.track = row.track_id;
      const cells = [
        [LABELS[row.engine] || row.engine], [row.track_id + (row.main ? " (main)" : "")], [row.frames],
        [signed(row.offset_frames) + " fr", "num offset-cell"], [row.description, "words"],
        [fmt(row.confidence), "num"], [fmt(row.min_dist), "num"],
        [row.reliable ? "yes" : "no" + (row.note ? ` (${row.note})` : "")], [fmt(row.processing_s, 1) + " s", "num"],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      body.append(tr);
    }

    const plots = result.plots || {};
    setImage("plot-confidence", plots.confidence);
    setImage("plot-offset-curves", plots.offset_curves);
    setImage("plot-speaking", plots.speaking);
    setImage("plot-preview", plots.preview);

    const blob = new Blob([JSON.stringify(result, null, 2)], { type: "application/json" });
    const link = $("download-json");
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.download = result.video.replace(/\.[^.]+$/, "") + "_sync.json";

    $("results").hidden = false;
    $("results").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function engineCard(name, report) {
    const card = document.createElement("div");
    card.className = `card engine-card ${name}`;
    card.id = `engine-${name}`;
    const offset = report.offset_frames;
    const ms = offset === null ? null : Math.round(offset * 1000 / (report.fps || 25));
    card.innerHTML = `
      <div class="name"></div>
      <div class="offset" data-offset="${offset === null ? "" : offset}"></div>
      <div class="words"></div>
      <dl>
        <dt>Confidence</dt><dd class="conf"></dd>
        <dt>Min distance</dt><dd class="dist"></dd>
        <dt>Faces</dt><dd class="faces"></dd>
        <dt>Processing</dt><dd class="time"></dd>
      </dl>`;
    card.querySelector(".name").textContent = LABELS[name] || name;
    const badge = document.createElement("span");
    badge.className = "badge " + (report.reliable ? "ok" : "unsure");
    badge.textContent = report.reliable ? "reliable" : "unsure";
    card.querySelector(".name").append(badge);
    card.querySelector(".offset").textContent = offset === null ? "–" : `${signed(offset)} frames`;
    card.querySelector(".words").textContent = offset === null ? "no reading"
      : report.reliable ? inWords(offset, ms)
      : report.min_dist === null ? "no reliable sync: no reading"
      : `no reliable sync (best guess: ${inWords(offset, ms)})`;
    card.querySelector(".conf").textContent = fmt(report.confidence);
    card.querySelector(".dist").textContent = fmt(report.min_dist);
    card.querySelector(".faces").textContent = String(report.tracks.length);
    card.querySelector(".time").textContent = fmt((report.timings || {}).total_s, 1) + " s";
    return card;
  }

  function inWords(offset, ms) {
    if (offset === 0) return "audio and video are in sync";
    return `audio is ${Math.abs(ms)} ms ${offset > 0 ? "early" : "late"}`;
  }

  function setImage(id, src) {
    const img = $(id);
    img.parentElement.hidden = !src;
    if (src) img.src = src;
  }

  // -- small helpers ----------------------------------------------------------------------------------------

  function size(bytes) {
    return bytes < 1048576 ? `${Math.max(1, Math.round(bytes / 1024))} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
  }
  function signed(n) { return n > 0 ? `+${n}` : String(n); }
  function fmt(x, digits = 2) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }

  function busy(on) {
    button.disabled = on;
    button.textContent = on ? "Analyzing…" : "Analyze";
  }

  function setProgress(fraction, text) {
    $("progress").hidden = false;
    $("progress-fill").style.width = `${Math.round(100 * Math.min(1, fraction))}%`;
    $("progress-text").textContent = text;
  }

  function showError(message) { const box = $("error"); box.textContent = message; box.hidden = false; }
  function hideError() { $("error").hidden = true; }
})();
