// The spectator page's score history: a small chart of each player's score over time, and
// when it last changed. Reads the history API (docs/PROTOCOL.md) once, then follows the
// standings through the "scoreboard:update" events of scoreboard.js. Data is only ever
// written with textContent and attributes.
import { byRank } from "./ranking.js";

const WINDOW = 1000; // change-sets read when the page opens (the API's largest page)
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 100;
const HEIGHT = 24;

const root = document.querySelector("[data-history-api]");

const state = {
  players: new Map(), // id -> {id, name, score}: the standings, as scoreboard.js shows them
  series: new Map(), // id -> [{at: Date, score}]: each change of the player's score, in order
  changedAt: new Map(), // id -> Date: the player's last change (any: score, name, added)
  version: null, // the last version the series include
  since: null, // the time of the oldest change-set read
  loading: false,
  held: [], // updates that arrived while the history was being read
};

const details = document.createElement("details");
const summary = document.createElement("summary");
const list = document.createElement("ol");
summary.textContent = "Scores over time";
details.append(summary, list);
details.addEventListener("toggle", () => details.open && draw());
root?.prepend(details);

function fetchHistory(after) {
  const url = new URL(root.dataset.historyApi, location.href);
  url.searchParams.set("after", String(after));
  url.searchParams.set("limit", String(WINDOW));
  return fetch(url, { credentials: "same-origin" }).then((response) => {
    if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
    return response.json();
  });
}

function addPoint(id, at, score) {
  const points = state.series.get(id) ?? [];
  const last = points[points.length - 1];
  if (!last || last.score !== score || at > last.at) points.push({ at, score });
  state.series.set(id, points);
}

// A change-set from the record: its players' scores at its own time.
function applyRecorded(change) {
  const at = new Date(change.at);
  if (state.since === null || at < state.since) state.since = at;
  for (const player of change.players) {
    if (player.to === null) {
      state.series.delete(player.id);
      state.changedAt.delete(player.id);
      continue;
    }
    // Its score before this change-set held since the start of what was read.
    if (player.from !== null && !state.series.has(player.id)) addPoint(player.id, state.since, player.from);
    addPoint(player.id, at, player.to);
    state.changedAt.set(player.id, at);
  }
  state.version = Math.max(state.version ?? 0, change.version);
}

// A live update: it happened just now.
function applyLive(message) {
  const now = new Date();
  for (const player of message.players) {
    const old = state.players.get(player.id);
    if (old && old.score !== player.score && !state.series.has(player.id)) {
      addPoint(player.id, state.since ?? now, old.score);
    }
    addPoint(player.id, now, player.score);
    state.changedAt.set(player.id, now);
  }
  for (const id of message.removed) {
    state.series.delete(id);
    state.changedAt.delete(id);
  }
  state.version = message.version;
}

async function catchUp(after) {
  state.loading = true;
  try {
    for (let pages = 0; pages < 5; pages++) {
      const page = await fetchHistory(after);
      for (const change of page.changes) applyRecorded(change);
      if (page.changes.length < WINDOW) break;
      after = state.version;
    }
  } catch (error) {
    console.warn(`scoreboard: ${error.message}`);
  } finally {
    state.loading = false;
  }
  const held = state.held.splice(0);
  for (const message of held) if (message.version > (state.version ?? 0)) applyLive(message);
  draw();
}

function follow(event) {
  const message = event.detail;
  if (message.type === "snapshot") {
    state.players = new Map(message.players.map((p) => [p.id, { id: p.id, name: p.name, score: p.score }]));
    if (state.loading) return;
    if (state.version === null) {
      catchUp(Math.max(0, message.version - WINDOW));
    } else if (message.version > state.version) {
      catchUp(state.version); // a resync: read what the page missed, with its real times
    } else {
      draw();
    }
    return;
  }
  if (state.loading) {
    state.held.push(message);
  } else {
    applyLive(message); // before the standings change: it reads each player's old score
  }
  for (const player of message.players) {
    state.players.set(player.id, { id: player.id, name: player.name, score: player.score });
  }
  for (const id of message.removed) state.players.delete(id);
  if (!state.loading) draw();
}

if (root) document.addEventListener("scoreboard:update", follow);

function sparkline(points, start, end, current) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  const steps = points.length ? points : [{ at: start, score: current }];
  const scores = steps.map((p) => p.score);
  const low = Math.min(...scores, current);
  const high = Math.max(...scores, current);
  const span = end - start || 1;
  const x = (at) => (((at - start) / span) * WIDTH).toFixed(2);
  const y = (score) => (high === low ? HEIGHT / 2 : HEIGHT - 2 - ((score - low) / (high - low)) * (HEIGHT - 4)).toFixed(2);
  // A score holds until its next change: a step line, flat to the right edge (now).
  const coordinates = [];
  steps.forEach((point, index) => {
    if (index > 0) coordinates.push(`${x(point.at)},${y(steps[index - 1].score)}`);
    coordinates.push(`${x(point.at)},${y(point.score)}`);
  });
  coordinates.push(`${WIDTH},${y(current)}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", coordinates.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "1.5");
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(line);
  return svg;
}

function timeText(at) {
  const today = new Date().toDateString() === at.toDateString();
  return today ? at.toLocaleTimeString() : at.toLocaleString();
}

function draw() {
  if (!details.open) return; // drawn when opened
  const players = [...state.players.values()].sort(byRank);
  const end = new Date();
  const times = [...state.series.values()].flatMap((points) => points.map((p) => p.at));
  const start = new Date(Math.min(state.since ?? end, ...times));
  const items = players.map((player) => {
    const item = document.createElement("li");
    item.dataset.playerId = String(player.id);
    const name = document.createElement("span");
    name.className = "history-name";
    name.textContent = player.name;
    const points = (state.series.get(player.id) ?? []).filter((p) => p.at >= start);
    const chart = sparkline(points, start, end, player.score);
    chart.dataset.points = String(points.length);
    const changed = state.changedAt.get(player.id);
    let when;
    if (changed) {
      when = document.createElement("time");
      when.dateTime = changed.toISOString();
      when.textContent = timeText(changed);
      when.title = "last change";
    } else {
      when = document.createElement("span");
      when.className = "history-never";
      when.textContent = state.since ? "no change lately" : "no change on record";
    }
    item.append(name, chart, when);
    return item;
  });
  list.replaceChildren(...items);
}
