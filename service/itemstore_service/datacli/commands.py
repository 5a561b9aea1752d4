"""The data commands of ``itemstore``: ls, get, put, rm, export, import, copy.

They talk to a running service through the SDK (the base install is enough:
nothing of the server is imported). Values are JSON on stdin/stdout; messages
go to stderr. Exit codes: 0 done, 1 failed, 2 usage (the command line or the
input it names is wrong). An error is one line saying what to do.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Final

from itemstore import Client, ItemstoreError, RetryPolicy, Unauthorized, Unavailable
from itemstore import ValidationError as Refused
from itemstore._protocol import DEFAULT_URL
from itemstore_wire.contract import KEY_TYPES, Key
from itemstore_wire.exactjson import dumps, loads

from .copying import copy_items
from .exporting import collection_names, export_records, write_records
from .importing import Importer, ImportFailed, Tally, import_lines
from .progress import progress_for

DONE, FAILED, USAGE = 0, 1, 2

# An import or a copy outlasts a busy moment of the service: more patient
# than the SDK's default (3 retries within 5 s).
PATIENT: Final = RetryPolicy(retries=6, max_backoff=5.0, total=30.0)


class UsageError(Exception):
    """The command line, or a value it gives, is wrong (exit 2)."""


def add_commands(commands: Any) -> dict[str, argparse.ArgumentParser]:
    """Add the data commands to ``commands`` (argparse subparsers); their parsers by name."""
    parsers: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help, description=description
        )
        parsers[name] = parser
        return parser

    def service(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--url", help=f"the service (default: ITEMSTORE_URL, else {DEFAULT_URL})"
        )
        parser.add_argument("--token", help="bearer token (default: ITEMSTORE_TOKEN)")

    def item(parser: argparse.ArgumentParser) -> None:
        service(parser)
        parser.add_argument("collection", metavar="COLLECTION")
        parser.add_argument("key", metavar="KEY", help="the key's text")
        parser.add_argument(
            "--key-type", choices=KEY_TYPES, default="str", help="type of KEY (default: str)"
        )

    def writes(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--mode",
            choices=("overwrite", "create-only"),
            default="overwrite",
            help="replace stored items (default), or keep them",
        )
        parser.add_argument(
            "--on-error",
            choices=("skip", "fail"),
            default="fail",
            help="a bad item: stop at it (default), or report it and go on",
        )

    ls = command(
        "ls",
        "list collections, or the keys of one",
        "Without COLLECTION: every collection with its item count (tab-separated). "
        "With COLLECTION: its keys in key order, one JSON value per line.",
    )
    service(ls)
    ls.add_argument("collection", metavar="COLLECTION", nargs="?")
    ls.add_argument("--prefix", help="only str keys starting with PREFIX")
    ls.add_argument("--limit", type=_positive, help="list at most LIMIT entries")

    get = command("get", "print an item's value as JSON", "Print the value of KEY as JSON.")
    item(get)

    put = command(
        "put",
        "store a JSON value",
        "Store VALUE (JSON) under KEY; '-' or no VALUE reads it from stdin.",
    )
    item(put)
    put.add_argument("value", metavar="VALUE", nargs="?", default="-")

    rm = command("rm", "remove an item", "Remove the item KEY (exit 1 when it is absent).")
    item(rm)

    export = command(
        "export",
        "write items as JSON Lines to stdout",
        "Write every item of the COLLECTIONs (all by default) to stdout, one JSON "
        'object per line: {"collection", "key", "key_type", "value"}.',
    )
    service(export)
    export.add_argument("collections", metavar="COLLECTION", nargs="*")

    load = command(
        "import",
        "write items from JSON Lines on stdin",
        "Write the items of an export (JSON Lines on stdin) through the batch endpoint. "
        "Running it again after an interruption finishes the job: items are written by key.",
    )
    service(load)
    writes(load)

    copy = command(
        "copy",
        "copy items from one service to another",
        "Copy every item of the COLLECTIONs (all by default) from one service to "
        "another, then check the item count of each collection on both.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL")
    copy.add_argument("--to", dest="target", required=True, metavar="URL")
    copy.add_argument("--from-token", help="token of --from (default: ITEMSTORE_TOKEN)")
    copy.add_argument("--to-token", help="token of --to (default: ITEMSTORE_TOKEN)")
    copy.add_argument("collections", metavar="COLLECTION", nargs="*")
    writes(copy)
    return parsers


def run(args: argparse.Namespace) -> int:
    """Run the data command ``args`` names; its exit code. Errors are told on
    stderr in one line, never as a traceback."""
    action: Callable[[argparse.Namespace], int] = _ACTIONS[args.command]
    try:
        return action(args)
    except UsageError as exc:
        return _error(str(exc), USAGE)
    except Refused as exc:
        return _error(exc.detail, USAGE if exc.status == 400 else FAILED)
    except Unauthorized:
        return _error(
            "the service refused the token: give the right one with --token or ITEMSTORE_TOKEN",
            FAILED,
        )
    except Unavailable as exc:
        hint = "; is it running? Give its address with --url or ITEMSTORE_URL"
        return _error(exc.detail + (hint if exc.code == "connection-failed" else ""), FAILED)
    except (ItemstoreError, ImportFailed) as exc:
        return _error(str(exc), FAILED)
    except BrokenPipeError:  # stdout closed early (`itemstore export | head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so that exit's flush stays quiet
        return DONE


# -- the commands ------------------------------------------------------------------
def _ls(args: argparse.Namespace) -> int:
    out = sys.stdout
    with _client(args) as client:
        if args.collection is None:
            if args.prefix is not None:
                raise UsageError("--prefix lists keys: name a COLLECTION")
            for name in _limited(client.collections(), args.limit):
                print(f"{name}\t{client.collection(name).count()}", file=out)
            return DONE
        keys = client.collection(args.collection).iter_keys(prefix=args.prefix)
        for key in _limited(keys, args.limit):
            out.buffer.write(dumps(key) + b"\n")
        out.flush()
    return DONE


def _get(args: argparse.Namespace) -> int:
    key = _key(args)
    with _client(args) as client:
        item = client.collection(args.collection).get_item(key)
    if item is None:
        return _error(_absent(args), FAILED)
    sys.stdout.buffer.write(dumps(item.value) + b"\n")
    sys.stdout.flush()
    return DONE


def _put(args: argparse.Namespace) -> int:
    key = _key(args)
    text = sys.stdin.buffer.read() if args.value == "-" else args.value.encode()
    try:
        value = loads(text)
    except ValueError as exc:
        raise UsageError(f"VALUE is not JSON ({exc}): quote strings, e.g. '\"text\"'") from None
    with _client(args) as client:
        client.collection(args.collection).set(key, value)
    return DONE


def _rm(args: argparse.Namespace) -> int:
    key = _key(args)
    with _client(args) as client:
        try:
            client.collection(args.collection).delete(key)
        except KeyError:
            return _error(_absent(args), FAILED)
    return DONE


def _export(args: argparse.Namespace) -> int:
    with _client(args) as client:
        write_records(export_records(client, args.collections), sys.stdout.buffer)
    return DONE


def _import(args: argparse.Namespace) -> int:
    started = time.monotonic()
    source = sys.stdin.buffer
    with _client(args, PATIENT) as client:
        importer = _importer(args, client, _line_count(source))
        try:
            tally = import_lines(importer, source)
        except ImportFailed as exc:
            return _error(
                f"{exc}; {importer.tally.written} items were written. Fix the line "
                "(or pass --on-error skip) and import again: items are written by key",
                FAILED,
            )
        except Unavailable as exc:
            return _error(
                f"{exc.detail}; {importer.tally.written} items were written. Import again "
                "once the service answers: items are written by key",
                FAILED,
            )
        finally:
            importer.close()
    _summary("imported", tally, started)
    return DONE


def _copy(args: argparse.Namespace) -> int:
    started = time.monotonic()
    source_token = args.from_token or _env("TOKEN")
    target_token = args.to_token or _env("TOKEN")
    with (
        Client(args.source, source_token, retry=PATIENT) as source,
        Client(args.target, target_token, retry=PATIENT) as target,
    ):
        names = collection_names(source, args.collections)
        total = sum(source.collection(name).count() for name in names)  # for the ETA
        importer = _importer(args, target, total)
        try:
            counts = copy_items(source, importer, target, names)
        finally:
            importer.close()
    _summary("copied", importer.tally, started)
    wrong = [c for c in counts if c.source != c.target]
    for c in counts:
        print(f"{c.collection}: {c.source} items at --from, {c.target} at --to", file=sys.stderr)
    if wrong:
        names = ", ".join(c.collection for c in wrong)
        return _error(
            f"item counts differ for {names}: the target held other items, or the source "
            "changed during the copy; copy again to bring the changes",
            FAILED,
        )
    return DONE


_ACTIONS: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "ls": _ls,
    "get": _get,
    "put": _put,
    "rm": _rm,
    "export": _export,
    "import": _import,
    "copy": _copy,
}


# -- helpers -----------------------------------------------------------------------
def _env(name: str) -> str | None:
    return os.environ.get(f"ITEMSTORE_{name}") or None


def _client(args: argparse.Namespace, retry: RetryPolicy | None = None) -> Client:
    url = args.url or _env("URL") or DEFAULT_URL
    try:
        return Client(url, args.token or _env("TOKEN"), retry=retry)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _importer(args: argparse.Namespace, client: Client, total: int | None) -> Importer:
    return Importer(
        client,
        mode=args.mode,
        on_error=args.on_error,
        warn=lambda message: print(message, file=sys.stderr, flush=True),
        progress=progress_for(sys.stderr, total),
    )


def _summary(verb: str, tally: Tally, started: float) -> None:
    elapsed = time.monotonic() - started
    done = tally.written + tally.kept + tally.expired + tally.skipped
    parts = [f"{tally.written} written"]
    parts += [
        f"{n} {what}"
        for n, what in (
            (tally.kept, "kept (already stored)"),
            (tally.expired, "expired"),
            (tally.skipped, "skipped"),
        )
        if n
    ]
    print(
        f"{verb} {done} items ({', '.join(parts)}) in {elapsed:.1f} s, "
        f"{done / elapsed if elapsed else 0:.0f} items/s",
        file=sys.stderr,
    )


def _key(args: argparse.Namespace) -> Key:
    """KEY as ``--key-type`` says."""
    text: str = args.key
    kind: str = args.key_type
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise UsageError(f"KEY {text!r} is not a number (--key-type {kind})") from None
    if kind == "bool":
        if text not in ("true", "false"):
            raise UsageError(f"KEY {text!r} is not a bool: use true or false (--key-type bool)")
        return text == "true"
    return text


def _absent(args: argparse.Namespace) -> str:
    return f"no item {args.key!r} (key type {args.key_type}) in collection {args.collection!r}"


def _limited(entries: Iterator[Any], limit: int | None) -> Iterator[Any]:
    for count, entry in enumerate(entries):
        if limit is not None and count >= limit:
            return
        yield entry


def _line_count(stream: BinaryIO) -> int | None:
    """How many lines a file given as stdin holds (None for a pipe), read
    ahead once so that the progress bar can show an ETA."""
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        start = stream.tell()
    except (OSError, ValueError):
        return None
    count = sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))
    stream.seek(start)
    return count


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _error(message: str, code: int) -> int:
    print(f"itemstore: error: {message}", file=sys.stderr)
    return code
