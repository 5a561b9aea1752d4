"""``itemstore serve``: the service's flags and processes. Every flag can
also come from an ITEMSTORE_* environment variable (flag ``--sqlite-path`` ↔
``ITEMSTORE_SQLITE_PATH``); a flag given on the command line wins."""

from __future__ import annotations

import argparse
import errno
import faulthandler
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.resource_tracker
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Final, NoReturn

from itemstore_wire.contract import Limits

from . import __version__
from .backends import BACKENDS, backend_module
from .config import LOG_LEVELS, Config, ConfigError
from .errors import ItemstoreError

if TYPE_CHECKING:
    from .host import HostState

_TRUE = {"1", "true", "yes", "on"}
_STOP_SIGNALS: Final = {signal.SIGTERM, signal.SIGINT}


def _env(name: str) -> str | None:
    return os.environ.get("ITEMSTORE_" + name.upper().replace("-", "_"))


def _env_flag(name: str) -> bool:
    return (_env(name) or "").strip().lower() in _TRUE


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="itemstore",
        description="itemstore: collections of JSON items by key, over HTTP.",
        epilog="Every flag can also be set as ITEMSTORE_<FLAG>, e.g. ITEMSTORE_PORT=9000.",
    )
    parser.add_argument("--version", action="version", version=f"itemstore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the itemstore HTTP service. With no flags: SQLite file "
        "itemstore.sqlite3 in the current folder, on http://127.0.0.1:8080.",
        epilog="Every flag can also be set as ITEMSTORE_<FLAG>, e.g. ITEMSTORE_PORT=9000, "
        "ITEMSTORE_DYNAMODB_CREATE_TABLE=true.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    migrate = commands.add_parser(
        "migrate",
        help="convert storage written by an older itemstore to this one's format",
        description="Convert a SQLite file or DynamoDB table of an older storage format "
        "(number keys listed as text) to the current one. Stop the service first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def option(
        flag: str,
        help: str,
        type: Any = str,
        default: Any = None,
        storage: bool = False,
        **kw: Any,
    ) -> None:
        # An environment value is given to argparse as text, so it is converted
        # (and refused with a clear message) only when no flag overrides it.
        # Storage flags (where the items are) are also migrate's.
        env = _env(flag)
        for command in (serve, migrate) if storage else (serve,):
            command.add_argument(
                f"--{flag}",
                type=type,
                default=env if env is not None else default,
                help=help,
                **kw,
            )

    def switch(flag: str, help: str) -> None:
        serve.add_argument(f"--{flag}", action="store_true", default=_env_flag(flag), help=help)

    option("host", "address to listen on", default=defaults.host)
    option("port", "TCP port to listen on", type=int, default=defaults.port)
    option(
        "backend",
        "storage backend",
        default=defaults.backend,
        choices=list(BACKENDS),
        storage=True,
    )
    option(
        "sqlite-path",
        "SQLite database file (created when missing)",
        default=defaults.sqlite_path,
        storage=True,
    )
    option(
        "dynamodb-endpoint",
        "DynamoDB endpoint URL (e.g. DynamoDB Local); default: the AWS endpoint of the region",
        storage=True,
    )
    option(
        "dynamodb-region", "AWS region of the table", default=defaults.dynamodb_region, storage=True
    )
    option("dynamodb-table", "DynamoDB table name", default=defaults.dynamodb_table, storage=True)
    switch("dynamodb-create-table", "create the DynamoDB table when it is missing")
    option(
        "dynamodb-shards",
        "partitions each collection is spread over; fixed for the life of a table",
        type=int,
        default=defaults.dynamodb_shards,
        storage=True,
    )
    option(
        "workers",
        "server processes sharing the port (SO_REUSEPORT)",
        type=int,
        default=defaults.workers,
    )
    serve.add_argument(  # no default shown in --help: it would print ITEMSTORE_TOKEN
        "--token",
        default=argparse.SUPPRESS,
        help="the bootstrap admin key: require 'Authorization: Bearer <token>' on every "
        "route but /, /openapi.yaml, /healthz and /readyz. A token on the command line "
        "shows in 'ps': prefer ITEMSTORE_TOKEN or --token-file",
    )
    option(
        "token-file",
        "file holding the bootstrap admin key (one trailing newline is ignored)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=(_env("cors-origin") or "").split() or None,
        help="let pages of this origin (scheme://host[:port], or '*' for any) call the "
        "service; repeatable (ITEMSTORE_CORS_ORIGIN: several separated by spaces)",
    )
    option(
        "metrics-port",
        "also serve /metrics, without a token, on this port (for the cluster network)",
        type=int,
    )
    switch("no-coalesce", "one backend call per request (only to measure what batching buys)")
    option(
        "max-value-bytes",
        "largest JSON value accepted, in bytes",
        type=int,
        default=defaults.limits.max_value_bytes,
    )
    option(
        "max-batch-bytes",
        "largest batch body accepted, in bytes",
        type=int,
        default=defaults.limits.max_batch_bytes,
    )
    option(
        "read-timeout",
        "seconds a request head, then its body, may take to arrive",
        type=float,
        default=defaults.read_timeout,
    )
    option(
        "write-timeout",
        "seconds an answer may make no progress to a client that does not read it",
        type=float,
        default=defaults.write_timeout,
    )
    option(
        "max-connections",
        "open client connections per worker (default: the file descriptor limit minus 64)",
        type=int,
        default=defaults.max_connections,
    )
    option(
        "log-level",
        "log level",
        default=defaults.log_level,
        choices=LOG_LEVELS,
    )
    switch("access-log", "log every request (costs throughput)")
    switch("no-console", "do not serve the browser console at /console/")
    option(
        "shutdown-timeout",
        "seconds to finish in-flight requests on SIGTERM",
        type=float,
        default=defaults.shutdown_timeout,
    )
    # Fail fast: deadlines, admission control, circuit breaker.
    option(
        "request-timeout",
        "seconds within which every data request is answered (503 past them)",
        type=float,
        default=defaults.request_timeout,
    )
    option(
        "max-inflight",
        "requests one worker handles at once; past it, 503 overloaded",
        type=int,
        default=defaults.max_inflight,
    )
    option(
        "max-queue-delay",
        "seconds of work a batch queue may hold past its next round of batches before new"
        " requests get 503 overloaded",
        type=float,
        default=defaults.max_queue_delay,
    )
    option(
        "max-loop-lag",
        "seconds the event loop may run late before new requests get 503 overloaded",
        type=float,
        default=defaults.max_loop_lag,
    )
    option(
        "breaker-failures",
        "backend calls failed in a row that open the circuit breaker",
        type=int,
        default=defaults.breaker_failures,
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The settings the parsed flags and ITEMSTORE_* variables name. Raises
    ConfigError for a bad value (argparse checks choices only on the command
    line, not on environment values)."""
    token = getattr(args, "token", None)
    if token is not None and args.token_file:
        raise ConfigError("give --token or --token-file, not both")
    if args.token_file:
        token = _read_token_file(args.token_file)
    elif token is None:
        token = _env("token")  # kept out of --help, which shows defaults
    values = {f.name: getattr(args, f.name) for f in fields(Config) if hasattr(args, f.name)}
    values["token"] = token
    limits = Limits(max_value_bytes=args.max_value_bytes, max_batch_bytes=args.max_batch_bytes)
    return Config(
        **values,
        coalesce=not args.no_coalesce,
        console=not args.no_console,
        limits=limits,
        cors_origins=tuple(args.cors_origin or ()),
    )


def _read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--token-file {path!r} cannot be read: {exc}") from None
    return text.removesuffix("\n").removesuffix("\r")


def auth_summary(config: Config) -> str:
    """What the start-up line says about auth."""
    if config.token:
        return "auth on: bootstrap admin token and access keys"
    return "auth off unless access keys are stored: no token, anyone may read and write"


def storage_config_from_args(args: argparse.Namespace) -> Config:
    """The settings of ``itemstore migrate``: where the items are, nothing more."""
    values = {f.name: getattr(args, f.name) for f in fields(Config) if hasattr(args, f.name)}
    return Config(**values)


def migrate_storage(config: Config) -> None:
    """Convert the storage ``config`` names to the current storage format."""
    import asyncio

    module = backend_module(config.backend)
    where = module.describe(config)
    try:
        converted = asyncio.run(module.migrate(config))
    except ItemstoreError as exc:
        print(f"itemstore: error: {exc.detail}", file=sys.stderr)
        sys.exit(1)
    print(f"{config.backend} {where}: {converted} key(s) converted")


def _hold_stop_signals() -> None:
    """Hold SIGTERM/SIGINT back (pending, not lost) until ``_release_stop_signals``.
    Until its handlers are in place a process would die of them outright (exit
    143) instead of stopping cleanly; processes started meanwhile inherit the hold."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def _release_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def run_worker(
    config: Config, on_listening: Callable[[], None], host: HostState | None = None
) -> None:
    """Serve until SIGTERM/SIGINT, then drain and close (one process).
    ``on_listening`` is called once the port is bound; ``host`` is what the
    workers of this host share."""
    _hold_stop_signals()  # held already when started by serve(): the hold is inherited
    faulthandler.enable()  # a fatal signal (SIGSEGV, SIGBUS ...) still writes its traceback
    import uvloop
    from aiohttp import web

    from .app import create_app
    from .gc_tuning import settle_heap
    from .listener import CannotListen, run_guarded
    from .observability.logs import configure_logging

    configure_logging(config.log_level)
    app = create_app(config, host)

    async def release_stop_signals(app: web.Application) -> None:
        # aiohttp installs its SIGTERM/SIGINT handlers before the app's
        # startup; a stop held back until now is handled as usual.
        _release_stop_signals()

    app.on_startup.insert(0, release_stop_signals)
    app.on_startup.append(settle_heap)  # after the storage opened: its objects are frozen too
    try:
        run_guarded(
            app,
            host=config.host,
            port=config.port,
            reuse_port=config.workers > 1,
            metrics_port=config.metrics_port,
            shutdown_timeout=config.shutdown_timeout,
            loop=uvloop.new_event_loop(),
            on_listening=on_listening,
        )
    except CannotListen as exc:
        _exit_with(_listen_problem(config, exc.error))
    except (OSError, ItemstoreError) as exc:  # a path it cannot write ...
        logging.getLogger("itemstore").error("cannot start: %s", exc)  # no traceback
        sys.exit(1)


def _run_worker_process(
    config: Config, listening: multiprocessing.connection.Connection, host: HostState
) -> None:
    """One of several workers: tells the parent through ``listening`` once it listens."""
    run_worker(config, lambda: listening.send_bytes(b"listening"), host)


def _exit_with(problem: str) -> NoReturn:
    print(f"itemstore: error: {problem}", file=sys.stderr, flush=True)
    sys.exit(1)


def _listen_problem(config: Config, error: OSError) -> str:
    """Why the service cannot listen, in one line that names the setting to change."""
    if error.errno is not None and error.errno > 0:  # a name lookup's errors are < 0
        reason = os.strerror(error.errno)
    else:
        reason = error.strerror or str(error)
    if error.errno in (errno.EADDRINUSE, errno.EACCES):
        fix = "choose another port with --port (or ITEMSTORE_PORT)"
    else:
        fix = "give an address of this machine with --host (or ITEMSTORE_HOST)"
    return f"cannot listen on {config.host}:{config.port}: {reason}; {fix}"


def _check_port_free(config: Config) -> str | None:
    """Why the service cannot listen, or None. Workers bind with SO_REUSEPORT,
    which would also let them share the port with another itemstore
    unnoticed; a plain bind first fails if anything listens there."""
    try:
        addresses = socket.getaddrinfo(
            config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in addresses:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as exc:
        return _listen_problem(config, exc)
    return None


def _all_listening(
    receivers: list[multiprocessing.connection.Connection], sentinels: list[int]
) -> bool:
    """Wait until every worker says it listens (True) or one ends (False)."""
    waiting = list(receivers)
    while waiting:
        ready = multiprocessing.connection.wait([*waiting, *sentinels])
        if any(sentinel in ready for sentinel in sentinels):
            return False
        waiting = [receiver for receiver in waiting if receiver not in ready]
    return True


def serve(config: Config) -> None:
    """Run the service in this process (one worker) or in ``config.workers``
    processes started and watched from this one; exit with the first failure."""
    host = None
    if config.workers > 1:
        # multiprocessing starts its resource tracker with the first worker,
        # and lets SIGTERM/SIGINT through in this process as it does: start
        # it before the hold, so that the hold lasts and the workers inherit it.
        multiprocessing.resource_tracker.ensure_running()
        from .host import HostState

        host = HostState.make(shared=True)  # one per host, for every worker
    _hold_stop_signals()
    where = backend_module(config.backend).describe(config)

    def announce() -> None:  # once listening: a port in use prints only the error
        print(
            f"itemstore {__version__} on http://{config.host}:{config.port} "
            f"(backend {config.backend}: {where}; {auth_summary(config)}; "
            f"{config.workers} worker(s))",
            flush=True,
        )

    if config.workers == 1:
        run_worker(config, on_listening=announce)
        return
    from .observability.metrics import prepare_multiprocess_metrics

    problem = _check_port_free(config)
    if problem:
        _exit_with(problem)
    prepare_multiprocess_metrics()  # workers share one metrics directory
    context = multiprocessing.get_context("spawn")
    pipes = [context.Pipe(duplex=False) for _ in range(config.workers)]
    workers = [
        context.Process(target=_run_worker_process, args=(config, sender, host))
        for _, sender in pipes
    ]
    for worker in workers:
        worker.start()
    for _, sender in pipes:
        sender.close()  # the workers hold their own ends

    stopping = False

    def stop(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _release_stop_signals()
    sentinels = [worker.sentinel for worker in workers]
    if _all_listening([receiver for receiver, _ in pipes], sentinels):
        announce()
    # One worker ending, on a signal or not, ends the service: a half-size
    # service that says nothing is worse than a restart by the orchestrator.
    ready = multiprocessing.connection.wait(sentinels)
    if not stopping:
        # The sentinel is ready when the process closes it, maybe a moment
        # before is_alive() can tell: join the one that ended.
        ended = next(w for w in workers if w.sentinel in ready)
        ended.join()
        print(
            f"itemstore: error: worker {ended.pid} ended (exit code {ended.exitcode});"
            " stopping the others",
            file=sys.stderr,
            flush=True,
        )
        stop()
    for worker in workers:
        worker.join()
    codes = [worker.exitcode or 0 for worker in workers]
    failed = next((code for code in codes if code), 0)
    sys.exit(failed if failed >= 0 else 128 - failed)  # killed by signal N: 128 + N


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            config = config_from_args(args)
        except ConfigError as exc:
            parser.error(str(exc))
        if getattr(args, "token", None) is not None:
            print(
                "itemstore: warning: a token given as --token shows in the process list"
                " (ps) of every user of this machine; pass it as ITEMSTORE_TOKEN or"
                " --token-file instead",
                file=sys.stderr,
                flush=True,
            )
        serve(config)
    elif args.command == "migrate":
        try:
            config = storage_config_from_args(args)
        except ConfigError as exc:
            parser.error(str(exc))
        migrate_storage(config)
