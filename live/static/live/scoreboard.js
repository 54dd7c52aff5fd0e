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

const state = {
  version: Number(section.dataset.version),
  players: new Map(), // id -> {id, name, score}
  awaitingSnapshot: true,
};
const rows = new Map(); // id -> <tr>

for (const row of tbody.rows) {
  const id = Number(row.dataset.playerId);
  rows.set(id, row);
  state.players.set(id, {
    id,
    name: cell(row, "name").textContent,
    score: Number(cell(row, "score").textContent),
  });
}

function cell(row, field) {
  return row.querySelector(`[data-field="${field}"]`);
}

function compareCodePoints(a, b) {
  // The server sorts names by code point (Python's str order), not by UTF-16 unit.
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

// Score descending, then name; ties share a rank (1, 2, 2, 4), as on the server.
export function ranked(players) {
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
  rows.set(id, row);
  return row;
}

function setText(element, value) {
  const text = String(value);
  if (element.textContent !== text) element.textContent = text;
}

function highlight(row) {
  row.classList.remove("changed");
  void row.offsetWidth; // restart the animation
  row.classList.add("changed");
}

function render(changedIds) {
  // FLIP: remember where rows were, re-order, then animate from the old place.
  const before = new Map();
  for (const [id, row] of rows) before.set(id, row.getBoundingClientRect().top);

  for (const [id, row] of rows) {
    if (!state.players.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
  let previous = null;
  for (const player of ranked(state.players.values())) {
    const row = rows.get(player.id) ?? makeRow(player.id);
    setText(cell(row, "rank"), player.rank);
    setText(cell(row, "name"), player.name);
    setText(cell(row, "score"), player.score);
    const expected = previous ? previous.nextElementSibling : tbody.firstElementChild;
    if (expected !== row) {
      if (previous) previous.after(row);
      else tbody.prepend(row);
    }
    previous = row;
  }
  emptyNote.hidden = state.players.size > 0;

  for (const [id, row] of rows) {
    const top = before.get(id);
    const shift = top === undefined ? 0 : top - row.getBoundingClientRect().top;
    if (shift) {
      row.animate([{ transform: `translateY(${shift}px)` }, { transform: "none" }], {
        duration: 300,
        easing: "ease-out",
      });
    }
  }
  for (const id of changedIds) {
    const row = rows.get(id);
    if (row) highlight(row);
  }
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
}

function applyUpdate(message) {
  for (const player of message.players) {
    state.players.set(player.id, { id: player.id, name: player.name, score: player.score });
  }
  for (const id of message.removed) state.players.delete(id);
  if (message.board) setText(title, message.board.name);
  state.version = message.version;
  render(message.players.map((p) => p.id));
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
    if (event.code === 4404) {
      setConnectionState("offline");
      notice.textContent = "This board was not found. It may have been removed.";
      notice.hidden = false;
      return;
    }
    if (event.code === 4403) {
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
