"""The Nexus command line."""

from nexus.cli.app import app, main

__all__ = ["app", "main"]
