"""Delivering scores: the channel layer, the relay, the spectator sockets and their protocol."""
