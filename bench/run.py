"""Benchmark itemstore with wrk, next to its ceiling and to itemstore without coalescing.

One command starts everything it measures on 127.0.0.1 (the service, a moto server
for the DynamoDB backend, the dict server ceiling), preloads the keys through the
batch endpoint, runs each workload with wrk after a warm-up, prints a markdown
table and stops every process it started (also on Ctrl-C).

    python -m bench.run --backend sqlite --workloads read,write,mixed --duration 10 --workers 2
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.payload import COLLECTION, key_name, make_value, preload_batches
from bench.procs import HOST, Child, Children, free_port, worker_peak_rss
from bench.report import TARGET_LABELS, Measurement, Report
from bench.wrk_driver import INSTALL_HINT, WORKLOADS, find_wrk, run_wrk, wrk_command

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("dict", "itemstore", "nocoalesce")
QUICK = {"duration": 1, "warmup": 1, "keys": 1000, "connections": 16}


@dataclass(frozen=True, slots=True)
class Settings:
    backend: str
    workloads: tuple[str, ...]
    targets: tuple[str, ...]
    duration: int
    warmup: int
    connections: int
    threads: int
    workers: int
    keys: int
    value_bytes: int


def child_env() -> dict[str, str]:
    """Environment for children: this checkout importable, fake AWS credentials for moto."""
    env = dict(os.environ)
    paths = [str(ROOT / "service"), str(ROOT / "client"), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # The DynamoDB endpoint is always a local moto server: never hand it real credentials.
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.pop("AWS_PROFILE", None)
    return env


def moto_command(port: int) -> list[str]:
    """moto with keep-alive (see bench/moto_keepalive.py), as DynamoDB keeps connections."""
    return [sys.executable, "-m", "bench.moto_keepalive", "--host", HOST, "--port", str(port)]


def itemstore_command(
    settings: Settings, port: int, work_dir: Path, target: str, dynamodb_url: str | None
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "itemstore_service",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--backend",
        settings.backend,
        "--workers",
        str(settings.workers),
        "--log-level",
        "warning",
    ]
    if settings.backend == "sqlite":
        argv += ["--sqlite-path", str(work_dir / f"{target}.sqlite3")]
    else:
        assert dynamodb_url is not None
        argv += [
            "--dynamodb-endpoint",
            dynamodb_url,
            "--dynamodb-table",
            f"bench-{target}",
            "--dynamodb-create-table",
        ]
    if target == "nocoalesce":
        argv.append("--no-coalesce")
    return argv


def dict_server_command(settings: Settings, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.dict_server",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(settings.workers),
        "--preload",
        str(settings.keys),
        "--value-bytes",
        str(settings.value_bytes),
    ]


def preload(port: int, keys: int, value_bytes: int, attempts: int = 5) -> None:
    """Put ``keys`` items through the batch endpoint, 100 ops per call; raise on any failure."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    path = f"/collections/{COLLECTION}/batch"
    headers = {"Content-Type": "application/json"}
    try:
        for body in preload_batches(keys, value_bytes):
            for attempt in range(attempts):
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                # A backend still warming up may say 503: retry a few times.
                if response.status == 503 and attempt + 1 < attempts:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                break
            if response.status != 200:
                raise RuntimeError(f"preload batch answered {response.status}: {answer[:500]!r}")
            statuses = {r["status"] for r in orjson.loads(answer)["results"]}
            if not statuses <= {200, 201}:
                raise RuntimeError(f"preload batch had item statuses {sorted(statuses)}")
    finally:
        conn.close()


@contextmanager
def started_target(
    children: Children, settings: Settings, target: str, work_dir: Path
) -> Iterator[tuple[Child, int]]:
    """Start one target (and its moto server), preload it; stop both afterwards."""
    env = child_env()
    extra: list[Child] = []
    dynamodb_url = None
    if target != "dict" and settings.backend == "dynamodb":
        moto_port = free_port()
        moto = children.start(f"moto-{target}", moto_command(moto_port), env)
        extra.append(moto)
        children.wait_http(moto, moto_port, "/moto-api/data.json")
        dynamodb_url = f"http://{HOST}:{moto_port}"
    port = free_port()
    if target == "dict":
        server = children.start(target, dict_server_command(settings, port), env)
    else:
        argv = itemstore_command(settings, port, work_dir, target, dynamodb_url)
        server = children.start(target, argv, env)
    try:
        children.wait_http(server, port, "/")
        preload(port, settings.keys, settings.value_bytes)
        yield server, port
    finally:
        children.stop(server)
        for child in extra:
            children.stop(child)


def measure(settings: Settings, wrk: str, log: Any = sys.stderr) -> Report:
    """Run every target x workload; returns the report."""
    report = Report(
        settings={
            "backend": settings.backend,
            "workloads": list(settings.workloads),
            "targets": list(settings.targets),
            "duration": settings.duration,
            "warmup": settings.warmup,
            "connections": settings.connections,
            "threads": settings.threads,
            "workers": settings.workers,
            "keys": settings.keys,
            "value_bytes": settings.value_bytes,
            "cpus": os.cpu_count(),
            # Other work on the machine skews every figure: keep the load next to them.
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        }
    )
    with (
        tempfile.TemporaryDirectory(prefix="itemstore-bench-") as tmp,
        Children(Path(tmp)) as children,
    ):
        for target in settings.targets:
            label = TARGET_LABELS[target]
            print(f"== {label}: starting and preloading {settings.keys:,} keys", file=log)
            with started_target(children, settings, target, Path(tmp)) as (server, port):
                for workload in settings.workloads:

                    def command(seconds: int, workload: str = workload) -> list[str]:
                        return wrk_command(
                            wrk,
                            workload,
                            f"http://{HOST}:{port}",
                            duration_s=seconds,
                            connections=settings.connections,
                            threads=settings.threads,
                            collection=COLLECTION,
                            keys=settings.keys,
                            value_bytes=settings.value_bytes,
                        )

                    if settings.warmup > 0:
                        run_wrk(command(settings.warmup), settings.warmup)
                    result, _ = run_wrk(command(settings.duration), settings.duration)
                    if server.proc.poll() is not None:
                        raise RuntimeError(f"{label} died during {workload}:\n{server.log_tail()}")
                    m = Measurement(target, workload, result, worker_peak_rss(server.pid))
                    report.measurements.append(m)
                    print(
                        f"   {workload:<6} {result.rps:>10,.0f} req/s  p50 {result.p50_ms:.2f} ms"
                        f"  p99 {result.p99_ms:.2f} ms  errors {result.errors}"
                        f"  peak RSS/worker {m.peak_rss_mib:.0f} MiB",
                        file=log,
                    )
    report.settings["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _csv(value: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{what} must be a comma list of {', '.join(allowed)}")
    return items


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None, Path | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--backend", choices=("sqlite", "dynamodb"), default="sqlite")
    parser.add_argument(
        "--workloads",
        type=lambda v: _csv(v, WORKLOADS, "--workloads"),
        default=WORKLOADS,
        help="comma list of read (100%% GET), write (100%% PUT), mixed (80/20)",
    )
    parser.add_argument(
        "--targets",
        type=lambda v: _csv(v, TARGETS, "--targets"),
        default=TARGETS,
        help="comma list of dict (ceiling), itemstore, nocoalesce (itemstore --no-coalesce)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per workload")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per workload")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--keys", type=int, default=10_000, help="keys preloaded and used")
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 s per workload, 1 s warm-up, 1,000 keys, 16 connections",
    )
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--markdown-out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    for name in ("duration", "connections", "threads", "workers", "keys"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    try:
        make_value(key_name(0), args.value_bytes)
    except ValueError as exc:
        parser.error(f"--value-bytes: {exc}")
    if args.duration > 600 or args.warmup > 600 or args.warmup < 0:
        parser.error("--duration and --warmup must be between 0 and 600 seconds")
    return (
        Settings(
            backend=args.backend,
            workloads=args.workloads,
            targets=args.targets,
            duration=args.duration,
            warmup=args.warmup,
            connections=args.connections,
            threads=args.threads,
            workers=args.workers,
            keys=args.keys,
            value_bytes=args.value_bytes,
        ),
        args.json_out,
        args.markdown_out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_out, markdown_out = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    try:
        report = measure(settings, wrk)
    except KeyboardInterrupt:
        print("interrupted: every started process was stopped", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as exc:  # WrkError is a RuntimeError
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    markdown = report.markdown()
    print(markdown)
    if markdown_out is not None:
        markdown_out.write_text(markdown + "\n")
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
