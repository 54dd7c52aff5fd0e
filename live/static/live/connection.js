// One WebSocket per tab for every board (docs/PROTOCOL.md, "One connection, many boards"):
// subscriptions by slug over /ws/, the client rule per board, reconnects with back-off and
// jitter, and, for a page that asks for it, its board's Server-Sent Events where WebSockets
// are blocked. Frames are handed on as parsed objects; this module writes nothing to the page.
//
//   const board = subscribe("demo", {snapshot, update, state, ended, watching, resumed, renamed},
//                           {version, eventsPath});
//   board.resync(); board.unsubscribe();
//   const off = on("member", (frame) => ...);   // frames about no one board
//
// An ES module is evaluated once per document, so every script of a page shares its socket.

export const MAX_SUBSCRIPTIONS = 20; // the server's cap per connection (live/delivery/protocol.py)

const WS_PATH = "/ws/";
const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 10_000;
const BACKGROUND_RETRY_CAP_MS = 30_000; // WebSocket retries while a board reads its event stream
const FAILED_OPENS_BEFORE_SSE = 2;
const PING_EVERY_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;
const STREAM_SILENCE_MS = 30_000; // the server comments every 15 s on a quiet stream
// The server closes a connection sending more than 10 frames within a second (1008): half of
// that leaves room for frames bunched up by the network.
const FRAMES_PER_SECOND = 5;

const subscriptions = new Map(); // slug -> Subscription (a renamed board is here under both)
const listeners = new Map(); // frame type -> Set of functions, for frames about no one board

const link = {
  socket: null, // the WebSocket, open or opening
  opened: false, // the current socket fired `open`
  retry: null, // the timer of the next connection attempt
  attempt: 0, // back-off step, reset by a snapshot or a pong
  failedOpens: 0, // WebSockets in a row that closed before they opened
  queue: [], // frames waiting for the socket or for the pace
  sentAt: [], // when the frames of the last second went out
  pacing: null,
  pingTimer: null,
  pongTimer: null,
};

// --- one board ------------------------------------------------------------------------

class Subscription {
  constructor(slug, handlers, { version = null, eventsPath = null } = {}) {
    this.slug = slug;
    this.handlers = handlers;
    // A page rendered with the standings passes their version: an event stream resumes from it.
    this.version = version;
    this.awaitingSnapshot = version === null;
    this.source = null; // "websocket" or "sse": where this board's frames are read from
    this.state = "offline";
    this.eventsPath = eventsPath; // the board's event stream, for networks that block WebSockets
    this.stream = null;
    this.leaving = false; // unsubscribed by this page
    this.ended = null; // why the subscription ended
  }

  resync() {
    this.awaitingSnapshot = true;
    if (this.source === "websocket") send({ type: "resync", board: this.slug });
    else if (this.stream) this.stream.restart({ fresh: true }); // a stream has no resync frame
  }

  unsubscribe() {
    if (this.ended) return;
    this.leaving = true;
    forget(this);
    this.stop("client");
    // A subscribe still waiting to go out needs no unsubscribe.
    if (!unqueue((frame) => frame.type === "subscribe" && frame.board === this.slug)) {
      unqueue((frame) => frame.type === "resync" && frame.board === this.slug);
      if (link.opened) send({ type: "unsubscribe", board: this.slug });
    }
    closeIfIdle();
  }

  // One frame about this board, from the WebSocket or from its event stream.
  receive(message, via) {
    if (this.ended) return;
    switch (message.type) {
      case "unsubscribed":
        if (message.reason !== "client" || this.leaving) this.end(message.reason);
        return;
      case "renamed":
        this.slug = message.to;
        subscriptions.set(message.to, this);
        this.handlers.renamed?.(message.to);
        return;
      case "watching":
        this.handlers.watching?.(message.count);
        return;
      case "error":
        if (message.code === "board_not_found") this.end("removed"); // an event stream's end
        else if (message.code === "forbidden") this.end("forbidden");
        else if (message.code === "too_many_subscriptions") this.end("too_many_subscriptions");
        else console.warn(`scoreboard: server error ${message.code} (${this.slug}): ${message.message}`);
        return;
    }
    if (via !== this.source) {
      // A WebSocket's snapshot makes it the source, ending the event stream if one was read.
      if (via !== "websocket" || message.type !== "snapshot") return;
      this.stream?.stop();
      this.stream = null;
      this.source = "websocket";
    }
    switch (message.type) {
      case "snapshot":
        this.version = message.version;
        this.awaitingSnapshot = false;
        this.handlers.snapshot?.(message);
        if (message.watching !== undefined) this.handlers.watching?.(message.watching);
        this.setState("live");
        break;
      case "update":
        if (this.awaitingSnapshot || message.version <= this.version) return;
        if (message.version === this.version + 1) {
          this.version = message.version;
          this.handlers.update?.(message);
        } else {
          this.resync(); // a gap: some update was lost
        }
        break;
      case "stale":
        // The server lost its channel layer; a fresh snapshot follows once it is back.
        this.setState("stale");
        break;
    }
  }

  setState(state) {
    this.state = state;
    this.handlers.state?.(state, state === "live" || state === "stale" ? this.source : null);
  }

  lostSocket() {
    if (this.source === "websocket") this.source = null;
    if (this.source === null && this.state !== "reconnecting") this.setState("reconnecting");
  }

  end(reason) {
    forget(this);
    this.stop(reason);
    this.setState("offline");
    if (reason !== "client") this.handlers.ended?.(reason);
    closeIfIdle();
  }

  stop(reason) {
    this.ended = reason;
    this.stream?.stop();
    this.stream = null;
    this.source = null;
  }
}

function forget(subscription) {
  for (const [slug, held] of subscriptions) if (held === subscription) subscriptions.delete(slug);
}

function held() {
  return new Set(subscriptions.values());
}

// --- the API --------------------------------------------------------------------------

// Subscribe to a board; `handlers` are called with what the page shows (all optional):
// snapshot(frame), update(frame) in version order, state("live"|"stale"|"reconnecting"|"offline",
// transport), ended("not_found"|"forbidden"|"removed"|"too_many_subscriptions"),
// watching(count), resumed() (an event stream resumed from `version`: no snapshot comes),
// renamed(slug).
export function subscribe(slug, handlers = {}, options = {}) {
  if (subscriptions.has(slug)) throw new Error(`already subscribed to ${slug}`);
  const subscription = new Subscription(slug, handlers, options);
  subscriptions.set(slug, subscription);
  if (link.opened) send({ type: "subscribe", board: slug });
  else if (subscription.eventsPath && link.failedOpens >= FAILED_OPENS_BEFORE_SSE) {
    subscription.stream = readEventStream(subscription);
  }
  connectSoon();
  return subscription;
}

// Listen to frames of a type about no one board (e.g. "member"); returns a function that stops.
export function on(type, listener) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(listener);
  connectSoon();
  return () => {
    listeners.get(type)?.delete(listener);
    closeIfIdle();
  };
}

// --- the WebSocket --------------------------------------------------------------------

function needed() {
  return subscriptions.size > 0 || [...listeners.values()].some((set) => set.size > 0);
}

function connectSoon() {
  if (link.socket === null && link.retry === null) connect();
}

function closeIfIdle() {
  if (needed()) return;
  clearTimeout(link.retry);
  link.retry = null;
  const socket = link.socket;
  link.socket = null;
  link.opened = false;
  dropQueue();
  stopKeepAlive();
  socket?.close();
}

function connect() {
  link.retry = null;
  if (!needed()) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${WS_PATH}`);
  link.socket = socket;
  link.opened = false;
  socket.addEventListener("open", () => {
    if (socket !== link.socket) return;
    link.opened = true;
    link.failedOpens = 0;
    dropQueue();
    for (const subscription of held()) send({ type: "subscribe", board: subscription.slug });
    keepAlive(socket);
  });
  socket.addEventListener("message", (event) => {
    if (socket !== link.socket) return;
    const message = parse(event.data);
    if (message !== null) dispatch(message);
  });
  socket.addEventListener("close", () => {
    if (socket !== link.socket) return;
    const opened = link.opened;
    link.socket = null;
    link.opened = false;
    dropQueue();
    stopKeepAlive();
    if (!opened) link.failedOpens += 1;
    for (const subscription of held()) {
      subscription.lostSocket();
      if (subscription.eventsPath && !subscription.stream && link.failedOpens >= FAILED_OPENS_BEFORE_SSE) {
        subscription.stream = readEventStream(subscription);
      }
    }
    if (!needed()) return;
    // While boards are read from event streams, WebSockets are retried in the background, more
    // slowly; while nothing works (the server is down?) both are retried at the usual pace.
    const streaming = [...held()].some((subscription) => subscription.source === "sse");
    link.retry = setTimeout(connect, backOff(link.attempt++, streaming ? BACKGROUND_RETRY_CAP_MS : RECONNECT_CAP_MS));
  });
}

function dispatch(message) {
  if (typeof message.slug === "string") {
    // Live, and the back-off reset, only with a snapshot: a server that accepts and then
    // closes (1013, its channel layer is down) must still be retried ever more slowly.
    if (message.type === "snapshot") link.attempt = 0;
    subscriptions.get(message.slug)?.receive(message, "websocket");
    return;
  }
  switch (message.type) {
    case "pong":
      clearTimeout(link.pongTimer);
      break;
    case "error":
      console.warn(`scoreboard: server error ${message.code}: ${message.message}`);
      break;
    default:
      for (const listener of listeners.get(message.type) ?? []) listener(message);
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

// Frames go out in order, at most FRAMES_PER_SECOND in any second.
function send(message, { first = false } = {}) {
  if (message.type === "resync" && link.queue.some((m) => m.type === "resync" && m.board === message.board)) return;
  if (first) link.queue.unshift(message);
  else link.queue.push(message);
  pump();
}

function unqueue(matches) {
  const index = link.queue.findIndex(matches);
  if (index >= 0) link.queue.splice(index, 1);
  return index >= 0;
}

function pump() {
  clearTimeout(link.pacing);
  link.pacing = null;
  while (link.queue.length && link.opened) {
    const now = performance.now();
    link.sentAt = link.sentAt.filter((at) => now - at < 1000);
    if (link.sentAt.length >= FRAMES_PER_SECOND) {
      link.pacing = setTimeout(pump, 1000 - (now - link.sentAt[0]) + 1);
      return;
    }
    link.sentAt.push(now);
    link.socket.send(JSON.stringify(link.queue.shift()));
  }
}

function keepAlive(socket) {
  stopKeepAlive();
  link.pingTimer = setInterval(() => {
    send({ type: "ping" }, { first: true });
    clearTimeout(link.pongTimer);
    // A silent network never closes the socket by itself: close it and reconnect.
    link.pongTimer = setTimeout(() => socket.close(), PONG_TIMEOUT_MS);
  }, PING_EVERY_MS);
}

function stopKeepAlive() {
  clearInterval(link.pingTimer);
  clearTimeout(link.pongTimer);
}

function dropQueue() {
  link.queue = [];
  clearTimeout(link.pacing);
  link.pacing = null;
}

function backOff(attempt, cap) {
  // Exponential back-off with full jitter, so a restarted server is not stampeded.
  const ceiling = Math.min(cap, RECONNECT_BASE_MS * 2 ** attempt);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

// --- Server-Sent Events, one board's, where WebSockets fail to open -----------------------

// Read with fetch (not EventSource), so that the page sees the server's keep-alive comments (a
// silent stream is a lost one), its refusals (404, 403) and picks the Last-Event-ID itself: the
// version it holds, or none when it needs a snapshot.
function readEventStream(subscription) {
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
    const resuming = !fresh && !subscription.awaitingSnapshot && subscription.version !== null;
    if (resuming) headers["Last-Event-ID"] = String(subscription.version);
    fresh = false;
    const response = await fetch(subscription.eventsPath, {
      headers,
      cache: "no-store",
      credentials: "same-origin",
      signal: controller.signal,
    });
    if (response.status === 404) return subscription.end("not_found");
    if (response.status === 403) return subscription.end("forbidden");
    if (!response.ok || !response.body) throw new Error(`event stream: HTTP ${response.status}`);
    heard();
    attempt = 0;
    if (subscription.source === null) {
      subscription.source = "sse";
      subscription.setState("live"); // the server sends what this version lacks, or nothing
      if (resuming) subscription.handlers.resumed?.();
    }
    for await (const data of events(response.body, heard)) {
      if (stopped || subscription.source !== "sse") return;
      const message = parse(data);
      if (message === null) continue;
      if (typeof message.slug === "string" || !listeners.has(message.type)) subscription.receive(message, "sse");
      else for (const listener of listeners.get(message.type)) listener(message); // e.g. "member"
    }
  }

  (async () => {
    while (!stopped && !subscription.ended) {
      try {
        await read();
      } catch (error) {
        if (error?.name !== "AbortError") console.warn(`scoreboard: ${error}`);
      }
      clearTimeout(silence);
      if (stopped || subscription.ended) return;
      if (restarting) {
        restarting = false; // a resync: at once, and still live
        continue;
      }
      if (subscription.source === "sse") {
        subscription.source = null;
        subscription.setState("reconnecting");
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
