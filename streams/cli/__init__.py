"""The `streamserve` command: argument parsing (`parser`), dispatch to the library (`main`),
the end-to-end demo (`demo`) and logging set-up. Thin on purpose: what a command does lives in
the other packages; the CLI builds `Settings` once and passes them down.
"""

from streams.cli.main import main

__all__ = ["main"]
