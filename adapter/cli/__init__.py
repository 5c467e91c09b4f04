"""The command line: one module per command group; :func:`main` is the entry point."""

from adapter.cli.main import main

__all__ = ["main"]
