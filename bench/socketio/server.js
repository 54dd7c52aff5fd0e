// The Socket.IO reference: a minimal broadcast server on Node with socket.io 4.x.
// Spectators get the latest snapshot as a "message" event, then every frame a publisher
// sends as a "publish" event, broadcast with one io.emit() (encoded once for all sockets).
// WebSocket transport only, no compression: the same work our server does.
"use strict";
const http = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
let snapshot = JSON.stringify({ type: "snapshot", version: 0, players: [] });

const server = http.createServer();
const io = new Server(server, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
  pingInterval: 25000,
  pingTimeout: 20000,
});

io.on("connection", (socket) => {
  if (socket.handshake.query.role === "publisher") {
    socket.on("publish", (frame) => {
      snapshot = JSON.stringify({ type: "snapshot", version: JSON.parse(frame).version, players: [] });
      socket.broadcast.emit("message", frame);
    });
    return;
  }
  socket.emit("message", snapshot);
});

server.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => console.log(`listening on ${port}`));
