// The spectator page: keeps the standings table equal to the server's over one WebSocket.
// Protocol: docs/PROTOCOL.md. Data is only ever written with textContent.

const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 10_000;
const PING_EVERY_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;

const section = document.querySelector(".board");
const tbody = section.querySelector("tbody");
const title = section.querySelector('[data-field="board-name"]');
const emptyNote = section.querySelector(".empty");
const notice = section.querySelector(".notice");
const badge = document.querySelector("[data-connection-state]");
// Close codes the page acts on, from the server (live/delivery/protocol.py).
const CLOSE = {
  forbidden: Number(section.dataset.closeForbidden),
  notFound: Number(section.dataset.closeNotFound),
};

const state = {
  version: Number(section.dataset.version),
  players: new Map(), // id -> {id, name, score}
  awaitingSnapshot: true,
};
const rows = new Map(); // id -> {row, rank, name, score}: a <tr> and its cells

for (const row of tbody.rows) {
  const id = Number(row.dataset.playerId);
  const view = rowView(row);
  rows.set(id, view);
  state.players.set(id, {
    id,
    name: view.name.textContent,
    score: Number(view.score.textContent),
  });
}

function rowView(row) {
  const cell = (field) => row.querySelector(`[data-field="${field}"]`);
  return { row, rank: cell("rank"), name: cell("name"), score: cell("score") };
}

function compareCodePoints(a, b) {
  // The server sorts names by code point (Python's str order), not by UTF-16 unit. The two
  // orders differ only where a surrogate pair meets a character above U+D7FF, so compare
  // units up to the first difference and decide that one by its code point.
  const length = Math.min(a.length, b.length);
  let i = 0;
  while (i < length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === length) return a.length - b.length;
  return a.codePointAt(i) - b.codePointAt(i);
}

// Score descending, then name; ties share a rank (1, 2, 2, 4), as on the server.
function ranked(players) {
  const ordered = [...players].sort((a, b) => b.score - a.score || compareCodePoints(a.name, b.name));
  let rank = 0;
  return ordered.map((player, index) => {
    if (index === 0 || player.score !== ordered[index - 1].score) rank = index + 1;
    return { ...player, rank };
  });
}

function makeRow(id) {
  const row = document.createElement("tr");
  row.dataset.playerId = String(id);
  for (const field of ["rank", "name", "score"]) {
    const td = document.createElement("td");
    td.dataset.field = field;
    row.append(td);
  }
  const view = rowView(row);
  rows.set(id, view);
  return view;
}

function setText(element, value) {
  const text = String(value);
  if (element.textContent !== text) element.textContent = text;
}

function highlight(row) {
  if (row.classList.contains("changed")) {
    row.classList.remove("changed");
    void row.offsetWidth; // restart the animation (a style flush, only for a row flashed before)
  }
  row.classList.add("changed");
}

// FLIP (first, last, invert, play) over one animation frame: where rows were before the
// first change of the frame, and where they are when the frame is about to be painted. All
// changes of a frame then cost the browser one layout pass, which it needs to paint anyway.
let pendingFrame = null; // {before: Map id -> top, changed: Set id} until the frame is drawn
// Positions are read relative to the viewport, which keeps rows the browser holds in place
// (scroll anchoring) still; a scroll between the two readings would move every row, so a
// frame that saw one does without the move animations.
let scrolled = false;
addEventListener("scroll", () => (scrolled = true), { passive: true });

function render(changedIds) {
  if (pendingFrame === null) {
    pendingFrame = { before: new Map(), changed: new Set() };
    scrolled = false;
    // Nothing has changed since the last frame, so these reads need no layout pass. A hidden
    // page shows no movement: it only flashes the changed rows when it is seen again.
    if (!document.hidden) {
      for (const [id, view] of rows) pendingFrame.before.set(id, view.row.getBoundingClientRect().top);
    }
    requestAnimationFrame(animateChanges);
  }
  for (const id of changedIds) pendingFrame.changed.add(id);

  // Rows whose score and name did not change keep their order among themselves: only the
  // changed ones are taken out and put back at their new place.
  const changed = new Set(changedIds);
  for (const [id, view] of rows) {
    if (!state.players.has(id)) {
      view.row.remove();
      rows.delete(id);
    } else if (changed.has(id)) {
      view.row.remove();
    }
  }
  let previous = null;
  for (const player of ranked(state.players.values())) {
    const view = rows.get(player.id) ?? makeRow(player.id);
    setText(view.rank, player.rank);
    setText(view.name, player.name);
    setText(view.score, player.score);
    const expected = previous ? previous.nextElementSibling : tbody.firstElementChild;
    if (expected !== view.row) {
      if (previous) previous.after(view.row);
      else tbody.prepend(view.row);
    }
    previous = view.row;
  }
  emptyNote.hidden = state.players.size > 0;
}

function animateChanges() {
  const { changed } = pendingFrame;
  const before = scrolled ? new Map() : pendingFrame.before;
  pendingFrame = null;
  // Every read before any animate() or class change: a read after one forces another layout.
  const viewportHeight = window.innerHeight;
  const shifts = [];
  for (const [id, view] of rows) {
    const top = before.get(id);
    if (top === undefined) continue;
    const now = view.row.getBoundingClientRect();
    const shift = top - now.top;
    // A row that is off screen all the way from its old place to its new one has nothing to
    // show; under a pixel is scroll anchoring's rounding, not a move.
    const seen = Math.min(top, now.top) < viewportHeight && Math.max(top, now.top) + now.height > 0;
    if (Math.abs(shift) >= 1 && seen) {
      shifts.push([view.row, shift]);
    }
  }
  for (const [row, shift] of shifts) {
    row.animate([{ transform: `translateY(${shift}px)` }, { transform: "none" }], {
      duration: 300,
      easing: "ease-out",
    });
  }
  for (const id of changed) {
    const view = rows.get(id);
    if (view) highlight(view.row);
  }
}

// Other modules of the page (history.js) follow the standings through this event.
function announce(message) {
  document.dispatchEvent(new CustomEvent("scoreboard:update", { detail: message }));
}

function applySnapshot(message) {
  const changed = [];
  const next = new Map();
  for (const player of message.players) {
    const old = state.players.get(player.id);
    if (!old || old.score !== player.score || old.name !== player.name) changed.push(player.id);
    next.set(player.id, { id: player.id, name: player.name, score: player.score });
  }
  state.players = next;
  state.version = message.version;
  state.awaitingSnapshot = false;
  setText(title, message.board.name);
  render(changed);
  announce(message);
}

function applyUpdate(message) {
  for (const player of message.players) {
    state.players.set(player.id, { id: player.id, name: player.name, score: player.score });
  }
  for (const id of message.removed) state.players.delete(id);
  if (message.board) setText(title, message.board.name);
  state.version = message.version;
  render(message.players.map((p) => p.id));
  announce(message);
}

let socket = null;
let attempt = 0;
let pingTimer = null;
let pongTimer = null;

function setConnectionState(value) {
  badge.dataset.connectionState = value;
  setText(badge, value);
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function requestResync() {
  state.awaitingSnapshot = true;
  send({ type: "resync" });
}

function onMessage(event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    console.warn("scoreboard: ignoring a frame that is not JSON");
    return;
  }
  switch (message.type) {
    case "snapshot":
      applySnapshot(message);
      section.dataset.version = String(state.version);
      attempt = 0;
      setConnectionState("live");
      break;
    case "stale":
      // The server lost its channel layer; a fresh snapshot follows once it is back.
      setConnectionState("stale");
      break;
    case "update":
      if (state.awaitingSnapshot || message.version <= state.version) return;
      if (message.version === state.version + 1) {
        applyUpdate(message);
        section.dataset.version = String(state.version);
      } else {
        requestResync(); // a gap: some update was lost
      }
      break;
    case "pong":
      clearTimeout(pongTimer);
      break;
    case "error":
      console.warn(`scoreboard: server error ${message.code}: ${message.message}`);
      break;
  }
}

function keepAlive() {
  clearInterval(pingTimer);
  pingTimer = setInterval(() => {
    send({ type: "ping" });
    clearTimeout(pongTimer);
    // A silent network never closes the socket by itself: close it and reconnect.
    pongTimer = setTimeout(() => socket && socket.close(), PONG_TIMEOUT_MS);
  }, PING_EVERY_MS);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}${section.dataset.wsPath}`);
  state.awaitingSnapshot = true; // the server's first frame is always a fresh snapshot
  // Live, and the back-off reset, only with a snapshot: a server that accepts and then
  // closes (1013, its channel layer is down) must still be retried ever more slowly.
  socket.addEventListener("open", keepAlive);
  socket.addEventListener("message", onMessage);
  socket.addEventListener("close", (event) => {
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    if (event.code === CLOSE.notFound) {
      setConnectionState("offline");
      notice.textContent = "This board was not found. It may have been removed, or you may need to log in.";
      notice.hidden = false;
      return;
    }
    if (event.code === CLOSE.forbidden) {
      setConnectionState("offline");
      notice.textContent = "This board is private. Reload the page after logging in.";
      notice.hidden = false;
      return;
    }
    setConnectionState("reconnecting");
    // Exponential back-off with full jitter, so a restarted server is not stampeded.
    const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** attempt);
    attempt += 1;
    setTimeout(connect, ceiling / 2 + (Math.random() * ceiling) / 2);
  });
}

connect();
