"""The ``itemstore`` command: ``serve`` runs the service and ``migrate``
converts its storage (``cli``); the data commands (``datacli``) talk to a
running one through the SDK. The server's modules are imported for ``serve``
and ``migrate`` only, so that the data commands run on the base install (the
SDK) and start fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .datacli import commands as data_commands

SERVER_COMMANDS = {
    "serve": "run the HTTP service",
    "migrate": "convert storage written by an older itemstore to this one's format",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """Every command, and the data commands' own parsers by name; the flags
    of ``serve`` and ``migrate`` are in ``cli.build_parser``."""
    parser = argparse.ArgumentParser(
        prog="itemstore",
        description="itemstore: collections of JSON items by key, over HTTP.",
        epilog="itemstore COMMAND --help tells more of each.",
    )
    parser.add_argument("--version", action="version", version=f"itemstore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help in SERVER_COMMANDS.items():
        commands.add_parser(name, help=help, add_help=False)
    return parser, data_commands.add_commands(commands)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] and args[0] in SERVER_COMMANDS:
        from .cli import main as server_command

        server_command(args)
        return
    parser, data_parsers = build_parser()
    if args[:1] and args[0] in data_parsers:
        # Options may come after the positional arguments (``put c k VALUE
        # --key-type int``): the command's own parser takes them intermixed.
        parsed = data_parsers[args[0]].parse_intermixed_args(args[1:])
        parsed.command = args[0]
    else:
        parsed = parser.parse_args(args)  # --help, --version, or a usage error
    try:
        code = data_commands.run(parsed)
    except KeyboardInterrupt:
        print("itemstore: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
