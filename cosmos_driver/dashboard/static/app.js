// cosmos-driver dashboard: live tables by polling the records' JSON, actions by POST with
// the page's CSRF token. Record values are put in the page as text, never as HTML.
"use strict";

const POLL_MS = 1000;
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

function say(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = false;
}

function duration(value) {
  if (value === null || value === undefined) return "";
  const whole = Math.round(value), h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  if (h) return `${h} h ${m} min`;
  return m ? `${m} min ${s} s` : `${s} s`;
}

function stateBadge(state) {
  const badge = document.createElement("span");
  badge.className = `state ${state}`;
  badge.textContent = state;
  return badge;
}

function fillRow(tr, run) {
  tr.dataset.state = run.state;
  tr.dataset.rating = run.rating || "";
  const stateCell = tr.querySelector(".state-cell");
  stateCell.replaceChildren(stateBadge(run.state));
  if (run.reason) {
    const why = document.createElement("small");
    why.className = "why";
    why.textContent = `${run.reason}: ${run.detail}`;
    stateCell.append(document.createElement("br"), why);
  }
  tr.querySelector(".host-cell").textContent = (run.host || "-") + (run.gpus.length ? ` · ${run.gpus.join(",")}` : "");
  const progressCell = tr.querySelector(".progress-cell");
  progressCell.replaceChildren();
  if (run.steps) {
    const bar = document.createElement("progress");
    bar.max = run.steps;
    bar.value = run.step;
    progressCell.append(bar, ` ${run.step}/${run.steps}`);
  }
  tr.querySelector(".elapsed-cell").textContent = duration(run.elapsed_s);
  tr.querySelector(".remaining-cell").textContent = duration(run.remaining_s);
  tr.querySelector(".rating-cell").textContent = "★".repeat(run.rating || 0);
}

// Every element that shows a run, by run id, found once: a batch of thousands of runs must
// not be searched for each run on every poll.
const shown = new Map();
function indexRuns() {
  for (const element of document.querySelectorAll("[data-run], [data-thumb-run], [data-state-run]")) {
    const id = element.dataset.run || element.dataset.thumbRun || element.dataset.stateRun;
    if (!shown.has(id)) shown.set(id, { rows: [], thumbs: [], badges: [], figures: [], last: null });
    const entry = shown.get(id);
    if (element.tagName === "TR" && element.dataset.run) entry.rows.push(element);
    if (element.dataset.thumbRun) entry.thumbs.push(element);
    if (element.dataset.stateRun) entry.badges.push(element);
    if (element.tagName === "FIGURE") entry.figures.push(element);
  }
}

function fillPictures(entry, run) {
  const src = run.thumbnail ? `/runs/${encodeURIComponent(run.run_id)}/files/${run.thumbnail.split("/").map(encodeURIComponent).join("/")}` : null;
  for (const img of entry.thumbs) {
    if (src && img.getAttribute("src") !== src) img.src = src;
    img.hidden = !src;
  }
  for (const badge of entry.badges) {
    badge.className = `state ${run.state}`;
    badge.textContent = run.state;
  }
  for (const figure of entry.figures) {
    figure.dataset.state = run.state;
    figure.dataset.rating = run.rating || "";
  }
}

function fillSummary(summary) {
  const counts = document.getElementById("counts");
  counts.replaceChildren();
  for (const [state, n] of Object.entries(summary.counts)) {
    const badge = stateBadge(state);
    badge.textContent = `${n} ${state}`;
    counts.append(badge, " ");
  }
  document.getElementById("hosts").textContent = summary.hosts.join(", ") || "-";
  document.getElementById("makespan").textContent = duration(summary.makespan_s) || "-";
}

function applyFilters() {
  const state = document.getElementById("filter-state").value;
  const rating = Number(document.getElementById("filter-rating").value || 0);
  for (const item of document.querySelectorAll("#runs tbody tr, #gallery figure")) {
    const stateOk = !state || item.dataset.state === state;
    const ratingOk = !rating || Number(item.dataset.rating || 0) >= rating;
    item.hidden = !(stateOk && ratingOk);
  }
}

async function pollBatch(batchId) {
  try {
    const response = await fetch(`/api/batches/${encodeURIComponent(batchId)}`, { cache: "no-store" });
    if (response.ok) {
      const data = await response.json();
      fillSummary(data.summary);
      for (const run of data.runs) {
        const entry = shown.get(run.run_id);
        const text = JSON.stringify(run);
        if (!entry || entry.last === text) continue;
        entry.last = text;
        for (const tr of entry.rows) fillRow(tr, run);
        fillPictures(entry, run);
      }
      applyFilters();
      document.body.dataset.updated = String(Date.now());
    }
  } finally {
    setTimeout(() => pollBatch(batchId), POLL_MS);
  }
}

async function pollLog(runId) {
  const following = document.getElementById("log-following");
  following.hidden = false;
  const response = await fetch(`/api/runs/${encodeURIComponent(runId)}/log`, { cache: "no-store" });
  if (!response.ok) return;
  const data = await response.json();
  const log = document.getElementById("log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = data.tail;
  if (atEnd) log.scrollTop = log.scrollHeight;
  const state = document.getElementById("run-state");
  state.className = `state ${data.state}`;
  state.textContent = data.state;
  if (data.ended) {
    following.hidden = true;
    return;
  }
  setTimeout(() => pollLog(runId), 2 * POLL_MS);
}

async function act(button) {
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    const response = await fetch(button.dataset.action, { method: "POST", headers: { "X-CSRF-Token": csrf() } });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) say(data.error || `refused (${response.status})`);
    else if (data.killing) say(`cancelling ${data.killing.length} run(s); the table follows`);
    else if (data.log) say(`started again; its output goes to ${data.log}`);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => act(button));
  }
  const batchPage = document.querySelector("[data-batch-page]");
  if (batchPage) {
    for (const id of ["filter-state", "filter-rating"]) document.getElementById(id).addEventListener("change", applyFilters);
    indexRuns();
    pollBatch(batchPage.dataset.batchPage);
  }
  const runPage = document.querySelector("[data-run-page]");
  if (runPage && runPage.dataset.ended === "no") pollLog(runPage.dataset.runPage);
});
