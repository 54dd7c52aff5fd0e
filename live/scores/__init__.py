"""Keeping scores: the data, its change-sets and the rules for reading it."""
