"""`streamserve models ...`: the fleet's control plane from the command line (thin)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from streams.config import Settings

MODEL_COMMANDS = ("list", "load", "retire", "route", "pause", "resume")
WAIT = ("--timeout", {"type": float, "default": 20.0,
                      "help": "seconds to wait for the workers' acknowledgements"})
EXPECT = ("--workers", {"type": int, "default": None,
                        "help": "answers to wait for (default: every worker reporting on the "
                        "model)"})


def add_models_parser(commands: Any, command: Any) -> None:
    """`models list | load | retire | route | pause | resume` under `commands`; `command`
    is the parser's helper that adds a subcommand with its summary and example."""
    models = command(commands, "models", "the fleet's models: list, load, retire, route, "
                     "pause, resume (the control topic)", "streamserve models list")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    command(sub, "list", "each model's control state and what every worker serves",
            "streamserve models list", action="models list")
    for name, summary, example, nargs, metavar in (
            ("load", "load versions of a model on every worker (weight 0: pinned requests "
             "only until routed)", "streamserve models load encoder 2", "+", "VERSION"),
            ("retire", "drain and unload versions on every worker",
             "streamserve models retire encoder 1", "+", "VERSION"),
            ("route", "set the canary split of the requests that name no version",
             "streamserve models route encoder 1=90 2=10", "+", "VERSION=WEIGHT"),
            ("pause", "refuse a model's requests (dead letters, replayable)",
             "streamserve models pause encoder", 0, None),
            ("resume", "serve a paused model again", "streamserve models resume encoder", 0,
             None)):
        parser = command(sub, name, summary, example, action=f"models {name}")
        parser.add_argument("model", help="registry name")
        if nargs:
            parser.add_argument("versions", nargs=nargs, metavar=metavar)
        parser.add_argument(WAIT[0], **WAIT[1])
        parser.add_argument(EXPECT[0], **EXPECT[1])


def run_models(args: argparse.Namespace, settings: Settings) -> int:
    from streams.control.commands import list_models, run_command

    if args.action == "models list":
        print(asyncio.run(list_models(settings)))
        return 0
    status, text = asyncio.run(run_command(
        settings, args.action.removeprefix("models "), args.model,
        list(getattr(args, "versions", [])), args.timeout, args.workers))
    print(text)
    return status
