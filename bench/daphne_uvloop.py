"""Daphne on uvloop: installs uvloop's policy before Daphne creates its event loop (an experiment)."""

import asyncio
import sys

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from daphne.cli import CommandLineInterface  # noqa: E402 - after the policy, on purpose

if __name__ == "__main__":
    sys.exit(CommandLineInterface.entrypoint())
