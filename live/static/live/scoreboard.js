// The spectator page: keeps the standings table equal to the server's, over a WebSocket or,
// where WebSockets are blocked, Server-Sent Events. Protocol: docs/PROTOCOL.md.
// Data is only ever written with textContent or as attribute values, never as markup.
import { byRank, compareCodePoints } from "./ranking.js";
import { handleMemberFrame } from "./notices.js";

const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 10_000;
const BACKGROUND_RETRY_CAP_MS = 30_000; // WebSocket retries while the page reads the event stream
const FAILED_OPENS_BEFORE_SSE = 2;
const PING_EVERY_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;
const STREAM_SILENCE_MS = 30_000; // the server comments every 15 s on a quiet stream
const ANNOUNCE_EVERY_MS = 5_000;
const ANNOUNCE_AT_MOST = 3;
const TV_PAGE_EVERY_MS = 8_000;

const html = document.documentElement;
const pageView = html.dataset.view ?? ""; // "", "tv", "overlay" or "embed"
const section = document.querySelector(".board");
const table = section.querySelector(".standings");
const tbody = section.querySelector("tbody.ranking");
const title = section.querySelector('[data-field="board-name"]');
const updatedAt = section.querySelector('[data-field="updated"]');
const announcer = section.querySelector('[data-field="announcements"]');
const emptyNote = section.querySelector(".empty");
const notice = section.querySelector(".notice");
const badge = section.querySelector("[data-connection-state]");
// Close codes the page acts on, from the server (live/delivery/protocol.py).
const CLOSE = {
  forbidden: Number(section.dataset.closeForbidden),
  notFound: Number(section.dataset.closeNotFound),
};
const TOP = Number(section.dataset.top) || Infinity; // overlay and embed: the first N only
const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

const state = {
  version: Number(section.dataset.version),
  players: new Map(), // id -> {id, name, score}
  // True from a detected gap until the snapshot that repairs it: updates are ignored meanwhile.
  awaitingSnapshot: false,
};
// What the page shows of each player beyond the server's data: its rank, the places it
// moved at its last rank change (+ up, - down), and its last score change.
const shown = new Map(); // id -> {rank, move, delta}
const rows = new Map(); // id -> row view: a <tr>, its cells and what they show
const pinned = new Map(); // id -> row view of a followed player's copy at the top

// --- rows ---------------------------------------------------------------------------

function rowView(row) {
  const field = (name) => row.querySelector(`[data-field="${name}"]`);
  const view = { row, rank: field("rank"), name: field("name"), score: field("score"), move: null, delta: null };
  view.follow = row.querySelector(".follow");
  view.shown = { rank: 0, move: 0, name: "", score: 0, delta: 0, podium: row.dataset.podium ?? "" };
  return view;
}

function element(tag, attributes = {}) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function makeRow(id) {
  const row = element("tr", { "data-player-id": String(id) });
  const rank = element("td", { class: "col-rank" });
  rank.append(element("div", { class: "place" }));
  rank.firstChild.append(element("span", { "data-field": "rank" }));
  const name = element("th", { class: "col-name", scope: "row" });
  name.append(element("span", { "data-field": "name" }));
  const score = element("td", { class: "col-score" });
  score.append(element("span", { "data-field": "score" }));
  row.append(rank, name, score);
  if (following) row.prepend(followCell(id));
  return rowView(row);
}

function setText(node, text) {
  node.textContent = text;
}

// Writes what changed since the row was last painted; comparisons use the values the row
// holds, not the DOM, so an unchanged row costs no DOM read.
function paint(view, player, info) {
  const was = view.shown;
  if (was.rank !== info.rank) {
    setText(view.rank, String(info.rank));
    was.rank = info.rank;
    const podium = info.rank <= 3 ? String(info.rank) : "";
    if (was.podium !== podium) {
      if (podium) view.row.dataset.podium = podium;
      else delete view.row.dataset.podium;
      was.podium = podium;
    }
  }
  if (was.move !== info.move) {
    view.move ??= view.rank.parentElement.appendChild(element("span", { class: "move", "data-field": "move" }));
    if (info.move) view.move.dataset.move = info.move > 0 ? "up" : "down";
    else delete view.move.dataset.move;
    setText(view.move, info.move ? String(Math.abs(info.move)) : "");
    was.move = info.move;
  }
  if (was.name !== player.name) {
    setText(view.name, player.name);
    was.name = player.name;
    view.key = searchKey(player.name);
    if (view.follow) view.follow.setAttribute("aria-label", `Follow ${player.name}`);
    if (search.query && !view.pinned) filterRow(view);
  }
  if (was.score !== player.score) {
    setText(view.score, String(player.score));
    was.score = player.score;
  }
  if (was.delta !== info.delta) {
    view.delta ??= view.score.parentElement.appendChild(element("span", { class: "delta", "data-field": "delta" }));
    if (info.delta) view.delta.dataset.sign = info.delta > 0 ? "up" : "down";
    // U+2212 MINUS SIGN: the same width as the plus sign in tabular figures.
    setText(view.delta, info.delta > 0 ? `+${info.delta}` : info.delta < 0 ? `\u2212${-info.delta}` : "");
    was.delta = info.delta;
  }
}

// The rows the server rendered: the page starts from them (they are the snapshot of
// data-version), so an event stream can resume from that version.
for (const row of tbody.rows) {
  const id = Number(row.dataset.playerId);
  const view = rowView(row);
  const player = { id, name: view.name.textContent, score: Number(view.score.textContent) };
  const rank = Number(view.rank.textContent);
  Object.assign(view.shown, { rank, name: player.name, score: player.score });
  view.key = searchKey(player.name);
  rows.set(id, view);
  state.players.set(id, player);
  shown.set(id, { rank, move: 0, delta: 0 });
}

// --- ranking, the same rule as the server's ------------------------------------------

// Score descending, then name; ties share a rank (1, 2, 2, 4), as on the server.
function ranked(players) {
  const ordered = [...players].sort(byRank);
  let rank = 0;
  return ordered.map((player, index) => {
    if (index === 0 || player.score !== ordered[index - 1].score) rank = index + 1;
    return { player, rank };
  });
}

// --- render: put every row at its place, animate what moved ---------------------------

// FLIP (first, last, invert, play) over one animation frame: where rows were before the
// first change of the frame, and where they are when the frame is about to be painted. All
// changes of a frame then cost the browser one layout pass, which it needs to paint anyway.
let pendingFrame = null; // {before: Map id -> top, changed: Set id} until the frame is drawn
// Positions are read relative to the viewport, which keeps rows the browser holds in place
// (scroll anchoring) still; a scroll between the two readings would move every row, so a
// frame that saw one does without the move animations.
let scrolled = false;
addEventListener("scroll", () => (scrolled = true), { passive: true });

function render(changedIds, { announce = true } = {}) {
  if (pendingFrame === null) {
    pendingFrame = { before: new Map(), changed: new Set() };
    scrolled = false;
    // Nothing has changed since the last frame, so these reads need no layout pass. A hidden
    // page, or one that asks for reduced motion, shows no movement: only the highlight.
    if (!document.hidden && !reducedMotion.matches) {
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
  for (const id of shown.keys()) if (!state.players.has(id)) shown.delete(id);

  const moves = [];
  let previous = null;
  let position = 0;
  for (const { player, rank } of ranked(state.players.values())) {
    let info = shown.get(player.id);
    if (info === undefined) shown.set(player.id, (info = { rank, move: 0, delta: 0 }));
    else if (info.rank !== rank) {
      moves.push({ player, from: info.rank, to: rank });
      info.move = info.rank - rank;
      info.rank = rank;
    }
    if (position++ >= TOP) continue;
    const view = rows.get(player.id) ?? addRow(player.id);
    paint(view, player, info);
    const expected = previous ? previous.nextElementSibling : tbody.firstElementChild;
    if (expected !== view.row) {
      if (previous) previous.after(view.row);
      else tbody.prepend(view.row);
    }
    previous = view.row;
  }
  // Overlay and embed: rows that fell out of the top N go.
  while (previous?.nextElementSibling) {
    const row = previous.nextElementSibling;
    row.remove();
    rows.delete(Number(row.dataset.playerId));
  }
  emptyNote.hidden = state.players.size > 0;
  renderPinned();
  if (announce) announceMoves(moves);
}

function addRow(id) {
  const view = makeRow(id);
  rows.set(id, view);
  return view;
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
    const copy = pinned.get(id);
    if (copy) highlight(copy.row);
  }
}

// The highlight is a CSS animation of a few seconds (a static colour with reduced motion);
// the class goes when it ends. A row changed again meanwhile switches to an identical
// animation of another name, which restarts it without a style flush.
function highlight(row) {
  if (row.classList.contains("changed")) row.classList.toggle("again");
  else row.classList.add("changed");
}

function unhighlight(event) {
  const row = event.target;
  if (row instanceof HTMLTableRowElement && event.animationName.startsWith("highlight")) {
    row.classList.remove("changed", "again");
  }
}
table.addEventListener("animationend", unhighlight);
table.addEventListener("animationcancel", unhighlight);

// --- the frames of the protocol ------------------------------------------------------

// Other modules of the page (history.js) follow the standings through this event.
function shareFrame(message) {
  document.dispatchEvent(new CustomEvent("scoreboard:update", { detail: message }));
}

function applySnapshot(message) {
  const changed = [];
  const next = new Map();
  for (const player of message.players) {
    const old = state.players.get(player.id);
    if (!old || old.score !== player.score || old.name !== player.name) changed.push(player.id);
    if (old && old.score !== player.score) noteDelta(player.id, player.score - old.score);
    next.set(player.id, { id: player.id, name: player.name, score: player.score });
  }
  state.players = next;
  state.version = message.version;
  state.awaitingSnapshot = false;
  setText(title, message.board.name);
  render(changed);
  shareFrame(message);
}

function applyUpdate(message) {
  for (const player of message.players) {
    const old = state.players.get(player.id);
    if (old && old.score !== player.score) noteDelta(player.id, player.score - old.score);
    state.players.set(player.id, { id: player.id, name: player.name, score: player.score });
  }
  for (const id of message.removed) state.players.delete(id);
  if (message.board) setText(title, message.board.name);
  state.version = message.version;
  render(message.players.map((p) => p.id));
  shareFrame(message);
}

function currentSnapshot() {
  const players = ranked(state.players.values()).map(({ player, rank }) => ({ ...player, rank }));
  return { type: "snapshot", board: { name: title.textContent }, version: state.version, players };
}

function noteDelta(id, delta) {
  const info = shown.get(id);
  if (info) info.delta = delta;
}

function markUpdated() {
  const now = new Date();
  updatedAt.dateTime = now.toISOString();
  setText(updatedAt, clockTime(now));
}

function clockTime(date) {
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

// One frame from the transport the page reads from (handled the same for both).
function handleFrame(message) {
  switch (message.type) {
    case "snapshot":
      applySnapshot(message);
      section.dataset.version = String(state.version);
      markUpdated();
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
        markUpdated();
      } else {
        requestResync(); // a gap: some update was lost
      }
      break;
    case "pong":
      clearTimeout(pongTimer);
      break;
    case "member":
      handleMemberFrame(message); // a message to this user (notices.js)
      break;
    case "error":
      if (message.code === "board_not_found") stopWith(CLOSE.notFound);
      else if (message.code === "forbidden") stopWith(CLOSE.forbidden);
      else console.warn(`scoreboard: server error ${message.code}: ${message.message}`);
      break;
  }
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    console.warn("scoreboard: ignoring a frame that is not JSON");
    return null;
  }
}

// --- transports: a WebSocket, or Server-Sent Events where WebSockets fail to open ---------

const link = {
  active: null, // "websocket" or "sse": where frames are read from
  socket: null, // the newest WebSocket (in use, or tried in the background)
  stream: null, // the event stream reader, once WebSockets failed to open twice in a row
  failedOpens: 0, // WebSockets in a row that closed before they opened
  attempt: 0, // WebSocket back-off step
  stopped: false, // the board is gone or private: nothing to retry
};
let pingTimer = null;
let pongTimer = null;

function setConnectionState(value) {
  badge.dataset.connectionState = value;
  if (link.active) badge.dataset.transport = link.active;
  setText(badge, value);
}

function requestResync() {
  state.awaitingSnapshot = true;
  if (link.active === "websocket") sendOnSocket({ type: "resync" });
  else if (link.stream) link.stream.restart({ fresh: true }); // a stream has no resync frame
}

function sendOnSocket(message) {
  const socket = link.socket;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function backOff(attempt, cap) {
  // Exponential back-off with full jitter, so a restarted server is not stampeded.
  const ceiling = Math.min(cap, RECONNECT_BASE_MS * 2 ** attempt);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

function stopWith(code) {
  link.stopped = true;
  link.stream?.stop();
  link.stream = null;
  if (link.socket) link.socket.close();
  link.active = null;
  setConnectionState("offline");
  notice.textContent =
    code === CLOSE.notFound
      ? "This board was not found. It may have been removed, or you may need to log in."
      : "This board is private. Reload the page after logging in.";
  notice.hidden = false;
}

function connectWebSocket() {
  if (link.stopped) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${section.dataset.wsPath}`);
  let opened = false;
  link.socket = socket;
  socket.addEventListener("open", () => {
    opened = true;
    link.failedOpens = 0;
    keepAlive(socket);
  });
  socket.addEventListener("message", (event) => {
    const message = parse(event.data);
    if (message === null) return;
    if (link.active !== "websocket") {
      // The first frame of every socket is a snapshot: it makes this socket the source,
      // ending the event stream if the page was reading one.
      if (message.type !== "snapshot") return;
      link.stream?.stop();
      link.stream = null;
      link.active = "websocket";
    }
    if (message.type === "snapshot") link.attempt = 0;
    handleFrame(message);
  });
  // Live, and the back-off reset, only with a snapshot: a server that accepts and then
  // closes (1013, its channel layer is down) must still be retried ever more slowly.
  socket.addEventListener("close", (event) => {
    if (socket !== link.socket) return;
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    link.socket = null;
    if (event.code === CLOSE.notFound || event.code === CLOSE.forbidden) {
      stopWith(event.code);
      return;
    }
    if (link.stopped) return;
    if (!opened) link.failedOpens += 1;
    if (link.active === "websocket") {
      link.active = null;
      setConnectionState("reconnecting");
    } else if (link.active === null && badge.dataset.connectionState !== "reconnecting") {
      setConnectionState("reconnecting");
    }
    if (link.stream === null && link.failedOpens >= FAILED_OPENS_BEFORE_SSE) link.stream = readEventStream();
    // While the page reads an event stream, WebSockets are retried in the background, more
    // slowly; while nothing works (the server is down?) both are retried at the usual pace.
    const cap = link.active === "sse" ? BACKGROUND_RETRY_CAP_MS : RECONNECT_CAP_MS;
    setTimeout(connectWebSocket, backOff(link.attempt++, cap));
  });
}

function keepAlive(socket) {
  clearInterval(pingTimer);
  pingTimer = setInterval(() => {
    if (socket !== link.socket) return;
    sendOnSocket({ type: "ping" });
    clearTimeout(pongTimer);
    // A silent network never closes the socket by itself: close it and reconnect.
    pongTimer = setTimeout(() => socket.close(), PONG_TIMEOUT_MS);
  }, PING_EVERY_MS);
}

// Server-Sent Events read with fetch (not EventSource), so that the page sees the server's
// keep-alive comments (a silent stream is a lost one), its refusals (404, 403) and picks
// the Last-Event-ID itself: the version it holds, or none when it needs a snapshot.
function readEventStream() {
  let controller = null;
  let stopped = false;
  let restarting = false;
  let fresh = false;
  let attempt = 0;
  let silence = null;
  const reader = {
    stop() {
      stopped = true;
      controller?.abort();
    },
    restart(options) {
      restarting = true;
      fresh = options.fresh;
      controller?.abort();
    },
  };

  function heard() {
    clearTimeout(silence);
    silence = setTimeout(() => controller?.abort(), STREAM_SILENCE_MS);
  }

  async function read() {
    controller = new AbortController();
    const headers = { Accept: "text/event-stream" };
    if (!fresh && !state.awaitingSnapshot) headers["Last-Event-ID"] = String(state.version);
    fresh = false;
    const response = await fetch(section.dataset.eventsPath, {
      headers,
      cache: "no-store",
      credentials: "same-origin",
      signal: controller.signal,
    });
    if (response.status === 404) return stopWith(CLOSE.notFound);
    if (response.status === 403) return stopWith(CLOSE.forbidden);
    if (!response.ok || !response.body) throw new Error(`event stream: HTTP ${response.status}`);
    heard();
    attempt = 0;
    if (link.active === null) {
      link.active = "sse";
      markUpdated();
      setConnectionState("live"); // the server sends what this version lacks, or nothing
      // No snapshot comes when the stream resumes: the page's own standings stand for one.
      if (headers["Last-Event-ID"]) shareFrame(currentSnapshot());
    }
    for await (const data of events(response.body, heard)) {
      if (stopped || link.active !== "sse") return;
      const message = parse(data);
      if (message !== null) handleFrame(message);
    }
  }

  (async () => {
    while (!stopped && !link.stopped) {
      try {
        await read();
      } catch (error) {
        if (error?.name !== "AbortError") console.warn(`scoreboard: ${error}`);
      }
      clearTimeout(silence);
      if (stopped || link.stopped) return;
      if (restarting) {
        restarting = false; // a resync: at once, and still live
        continue;
      }
      if (link.active === "sse") {
        link.active = null;
        setConnectionState("reconnecting");
      }
      await new Promise((resolve) => setTimeout(resolve, backOff(attempt++, RECONNECT_CAP_MS)));
    }
  })();
  return reader;
}

// The `data` of each event of a text/event-stream body (the server sends LF line ends and
// one data line per event; comments only say the stream is alive).
async function* events(body, heard) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data = null;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      heard();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (data !== null) yield data;
          data = null;
        } else if (line.startsWith("data:")) {
          const value = line.slice(line.startsWith("data: ") ? 6 : 5);
          data = data === null ? value : `${data}\n${value}`;
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// --- follow: players pinned to the top, remembered by this browser ------------------

const following = pageView === "";
const storageKey = `scoreboard:followed:${section.dataset.slug}`;
const followed = new Set(following ? loadFollowed() : []);
let pinnedBody = null;

function loadFollowed() {
  try {
    const ids = JSON.parse(localStorage.getItem(storageKey) ?? "[]");
    return Array.isArray(ids) ? ids.filter(Number.isInteger) : [];
  } catch {
    return []; // storage blocked or corrupt: follow nobody
  }
}

function saveFollowed() {
  try {
    localStorage.setItem(storageKey, JSON.stringify([...followed]));
  } catch {
    // Storage may be full or blocked; following then lasts as long as the page.
  }
}

function followCell(id) {
  const cell = element("td", { class: "col-follow" });
  const button = element("button", { type: "button", class: "follow", "aria-pressed": String(followed.has(id)) });
  cell.append(button);
  return cell;
}

function setupFollowing() {
  const header = element("th", { scope: "col", class: "col-follow" });
  header.append(element("span", { class: "visually-hidden" }));
  header.firstChild.textContent = "Follow";
  table.tHead.rows[0].prepend(header);
  for (const view of rows.values()) {
    view.row.prepend(followCell(Number(view.row.dataset.playerId)));
    view.follow = view.row.querySelector(".follow");
    view.follow.setAttribute("aria-label", `Follow ${view.shown.name}`);
  }
  pinnedBody = element("tbody", { class: "pinned" });
  tbody.before(pinnedBody);
  table.addEventListener("click", (event) => {
    const button = event.target.closest(".follow");
    if (!button) return;
    const id = Number(button.closest("tr").dataset.playerId);
    if (followed.has(id)) followed.delete(id);
    else followed.add(id);
    saveFollowed();
    rows.get(id)?.follow?.setAttribute("aria-pressed", String(followed.has(id)));
    renderPinned();
    // The pinned copy replaced or removed the pressed button: keep the focus on the row's own.
    if (!button.isConnected) rows.get(id)?.follow?.focus();
  });
}

// Copies of the followed players' rows, in rank order, above the ranking.
function renderPinned() {
  if (pinnedBody === null) return;
  for (const [id, copy] of pinned) {
    if (!followed.has(id) || !state.players.has(id)) {
      copy.row.remove();
      pinned.delete(id);
    }
  }
  const order = [...followed]
    .filter((id) => state.players.has(id))
    .sort(
      (a, b) =>
        shown.get(a).rank - shown.get(b).rank ||
        compareCodePoints(state.players.get(a).name, state.players.get(b).name),
    );
  let previous = null;
  for (const id of order) {
    let copy = pinned.get(id);
    if (copy === undefined) {
      copy = makeRow(id);
      copy.pinned = true;
      copy.row.classList.add("pinned-row");
      pinned.set(id, copy);
    }
    copy.follow.setAttribute("aria-pressed", "true");
    paint(copy, state.players.get(id), shown.get(id));
    const expected = previous ? previous.nextElementSibling : pinnedBody.firstElementChild;
    if (expected !== copy.row) {
      if (previous) previous.after(copy.row);
      else pinnedBody.prepend(copy.row);
    }
    previous = copy.row;
  }
  pinnedBody.hidden = pinned.size === 0;
}

// --- search --------------------------------------------------------------------------

const search = { query: "", input: section.querySelector('[data-field="search"]'), pending: false };

function searchKey(text) {
  // Case and accents do not matter: "zoe" finds "Zoë".
  return text.normalize("NFKD").replace(/\p{M}/gu, "").toLocaleLowerCase();
}

function filterRow(view) {
  const hide = search.query !== "" && !view.key.includes(search.query);
  if (view.row.hidden !== hide) view.row.hidden = hide;
}

function setupSearch() {
  const found = section.querySelector('[data-field="found"]');
  search.input.closest(".tools").hidden = false;
  search.input.addEventListener("input", () => {
    if (search.pending) return;
    search.pending = true;
    requestAnimationFrame(() => {
      search.pending = false;
      search.query = searchKey(search.input.value.trim());
      let count = 0;
      for (const view of rows.values()) {
        filterRow(view);
        if (!view.row.hidden) count++;
      }
      setText(found, search.query ? `${count} of ${rows.size} shown` : "");
    });
  });
}

// --- announcements for screen readers: moves of followed and leading players ----------

// Within one throttle window a player's moves fold into one: from where it was to where it is.
const announcements = { pending: new Map(), timer: null, last: -Infinity };

function announceMoves(moves) {
  for (const { player, from, to } of moves) {
    if (!followed.has(player.id) && from > 3 && to > 3) continue;
    const earlier = announcements.pending.get(player.id);
    announcements.pending.set(player.id, { name: player.name, from: earlier?.from ?? from, to });
  }
  if (announcements.pending.size && announcements.timer === null) {
    const wait = Math.max(0, announcements.last + ANNOUNCE_EVERY_MS - performance.now());
    announcements.timer = setTimeout(flushAnnouncements, wait);
  }
}

function flushAnnouncements() {
  announcements.timer = null;
  announcements.last = performance.now();
  const moves = [...announcements.pending.values()].filter((move) => move.from !== move.to);
  announcements.pending.clear();
  if (moves.length === 0) return;
  moves.sort((a, b) => a.to - b.to);
  const told = moves
    .slice(0, ANNOUNCE_AT_MOST)
    .map(({ name, from, to }) => `${name} ${to < from ? "up" : "down"} to ${ordinal(to)} (was ${ordinal(from)})`);
  const more = moves.length - ANNOUNCE_AT_MOST;
  if (more > 0) told.push(`and ${more} more ${more === 1 ? "move" : "moves"}`);
  setText(announcer, `${told.join(". ")}.`);
}

function ordinal(n) {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] ?? "th";
  return `${n}${suffix}`;
}

// --- the sticky header's height, for the table header that sticks below it -------------

const bar = section.querySelector(".board-bar");
new ResizeObserver(([entry]) => {
  section.style.setProperty("--bar-height", `${entry.borderBoxSize[0].blockSize}px`);
}).observe(bar);

// --- the big screen: scroll long boards a page at a time, move on to the next board -----

function runBigScreen() {
  const rotation = (section.dataset.rotation ?? "").split(",").filter(Boolean);
  const every = Number(section.dataset.every) * 1000;
  const startedAt = performance.now();
  let nextPage = startedAt + TV_PAGE_EVERY_MS;

  function rotateIfDue() {
    if (rotation.length === 0 || performance.now() - startedAt < every) return false;
    const next = rotation[(rotation.indexOf(section.dataset.slug) + 1) % rotation.length];
    const url = new URL(location.href);
    url.pathname = url.pathname.replace(/[^/]+\/$/, `${encodeURIComponent(next)}/`);
    location.assign(url);
    return true;
  }

  setInterval(() => {
    const bottom = document.documentElement.scrollHeight - innerHeight;
    if (bottom <= 1) {
      rotateIfDue(); // the whole board is on screen
      return;
    }
    if (performance.now() < nextPage) return;
    nextPage = performance.now() + TV_PAGE_EVERY_MS;
    const behavior = reducedMotion.matches ? "instant" : "smooth";
    if (scrollY >= bottom - 1) {
      // A whole pass is done: the next board, or this one from the top.
      if (!rotateIfDue()) scrollTo({ top: 0, behavior });
    } else {
      // A screen at a time, less the sticky headers and one row shown again for context.
      const header = bar.offsetHeight + (table.tHead?.offsetHeight ?? 0);
      const row = tbody.rows[0]?.offsetHeight ?? 0;
      scrollBy({ top: Math.max(row, innerHeight - header - row), behavior });
    }
  }, 250);
}

// --- start ---------------------------------------------------------------------------

updatedAt.textContent = clockTime(new Date(updatedAt.dateTime));
if (following) {
  setupFollowing();
  renderPinned();
}
if (search.input) setupSearch();
if (pageView === "tv") runBigScreen();
connectWebSocket();
