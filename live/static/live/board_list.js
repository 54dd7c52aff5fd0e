// The board list (/): each board's leader, player count and watchers, live over the tab's one
// WebSocket (connection.js). Within the connection's cap it follows the boards on screen; a
// board scrolled away keeps its subscription until the room is needed (docs/PROTOCOL.md, "The
// board list over /ws/"). Data is only ever written with textContent or as attribute values.
import { MAX_SUBSCRIPTIONS, on, subscribe } from "./connection.js";
import { handleMemberFrame } from "./notices.js";
import { byRank } from "./ranking.js";

const badge = document.querySelector("[data-connection-state]");
const rows = new Map(); // li -> row: the board's slug, its fields, players and subscription

function rowOf(item) {
  const field = (name) => item.querySelector(`[data-field="${name}"]`);
  return {
    item,
    slug: item.dataset.slug,
    count: field("player-count"),
    leader: field("leader"),
    leaderName: field("leader-name"),
    leaderScore: field("leader-score"),
    watching: field("watching"),
    endedNote: field("ended"),
    players: new Map(), // id -> {id, name, score}
    subscription: null,
    visible: false,
    leftViewAt: 0, // when the row last scrolled out of view
    ended: false,
  };
}

function paint(row) {
  const count = row.players.size;
  row.count.textContent = `${count} player${count === 1 ? "" : "s"}`;
  let leader = null;
  for (const player of row.players.values()) if (leader === null || byRank(player, leader) < 0) leader = player;
  row.leader.hidden = leader === null;
  if (leader !== null) {
    row.leaderName.textContent = leader.name;
    row.leaderScore.textContent = String(leader.score);
  }
}

function handlers(row) {
  return {
    snapshot(message) {
      row.players = new Map(message.players.map((p) => [p.id, { id: p.id, name: p.name, score: p.score }]));
      paint(row);
    },
    update(message) {
      for (const p of message.players) row.players.set(p.id, { id: p.id, name: p.name, score: p.score });
      for (const id of message.removed) row.players.delete(id);
      paint(row);
    },
    state(state) {
      row.item.dataset.live = String(state === "live");
      showState();
    },
    watching(count) {
      row.watching.hidden = false;
      row.watching.textContent = `${count} watching`;
    },
    ended(reason) {
      row.subscription = null;
      if (reason === "too_many_subscriptions") {
        row.item.dataset.live = "false"; // the server's cap is lower than ours: not live for now
        showState();
        return;
      }
      // Removed, made private, or never there for this visitor: what the row shows is its last.
      row.ended = true;
      row.item.dataset.ended = reason;
      row.item.dataset.live = "false";
      row.endedNote.hidden = false;
      row.endedNote.textContent = reason === "removed" ? "Removed" : "No longer available";
      showState();
      follow();
    },
    renamed(slug) {
      row.slug = row.item.dataset.slug = slug;
      for (const link of row.item.querySelectorAll("a[href]")) {
        const url = new URL(link.href);
        url.pathname = `/boards/${encodeURIComponent(slug)}/`;
        link.href = url.pathname + url.search;
      }
    },
  };
}

// Subscribe to the rows on screen; make room by leaving the row scrolled away longest ago.
function follow() {
  const subscribed = () => [...rows.values()].filter((row) => row.subscription !== null);
  for (const row of rows.values()) {
    if (!row.visible || row.subscription !== null || row.ended) continue;
    if (subscribed().length >= MAX_SUBSCRIPTIONS) {
      const idle = subscribed()
        .filter((other) => !other.visible)
        .sort((a, b) => a.leftViewAt - b.leftViewAt)[0];
      if (idle === undefined) break; // more rows on screen than the cap: the first ones are live
      idle.subscription.unsubscribe();
      idle.subscription = null;
      idle.item.dataset.live = "false";
    }
    row.subscription = subscribe(row.slug, handlers(row));
  }
  showState();
}

// One badge for the list: reconnecting or stale if any board followed is, else live if one is.
function showState() {
  const states = [...rows.values()].filter((row) => row.subscription).map((row) => row.subscription.state);
  const state = ["reconnecting", "stale", "live"].find((s) => states.includes(s)) ?? "offline";
  badge.dataset.connectionState = state;
  badge.textContent = state;
}

const observer = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      const row = rows.get(entry.target);
      if (row.visible && !entry.isIntersecting) row.leftViewAt = performance.now();
      row.visible = entry.isIntersecting;
    }
    follow();
  },
  { rootMargin: "100px 0px" },
);

for (const item of document.querySelectorAll(".board-list li[data-slug]")) {
  const row = rowOf(item);
  item.dataset.live = "false";
  rows.set(item, row);
  observer.observe(item);
}

on("member", handleMemberFrame); // messages to this user (notices.js), boards or none
