"""Benchmark itemstore with wrk, next to its ceiling, to itemstore without coalescing
and, when asked, to another source tree of itemstore.

One command starts everything it measures on 127.0.0.1 (the service, a local DynamoDB
for the DynamoDB backend, the dict server ceiling), preloads the keys through the
batch endpoint, runs each workload with wrk after a warm-up, reads the CPU time of
every process it started around each timed run, prints a markdown table and stops
every process it started (also on Ctrl-C).

    python -m bench.run --backend sqlite --workloads read,write,mixed --duration 10 --workers 2
    python -m bench.run --backend dynamodb --dynamodb-impl dynalite --compare-src ../older

Absolute rates drift with the machine's other work; ``--rounds N`` measures every
target N times in alternating order and gives each ratio as the median of the
rounds' ratios, with the lowest and the highest.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench import cpu, dynamodb_local
from bench.payload import COLLECTION, key_name, make_value
from bench.procs import HOST, Children, worker_peak_rss
from bench.report import Measurement, Report
from bench.targets import (
    TARGETS,
    Running,
    Settings,
    check_source,
    describe_source,
    started_target,
)
from bench.wrk_driver import INSTALL_HINT, WORKLOADS, find_wrk, run_wrk, wrk_command

QUICK = {"duration": 1, "warmup": 1, "keys": 1000, "connections": 16}
DEFAULT_TARGETS = ("dict", "itemstore", "nocoalesce")


def run_settings(settings: Settings) -> dict[str, Any]:
    """The settings as the report keeps them."""
    sources = {
        target: describe_source(src)
        for target in settings.targets
        if target != "dict" and (src := settings.source_of(target)) is not None
    }
    labels = {}
    if settings.compare_src is not None:
        labels["compare"] = f"itemstore {describe_source(settings.compare_src).split()[0]}"
    return {
        "backend": settings.backend,
        "dynamodb_impl": settings.dynamodb_impl,
        "workloads": list(settings.workloads),
        "targets": list(settings.targets),
        "duration": settings.duration,
        "warmup": settings.warmup,
        "connections": settings.connections,
        "threads": settings.threads,
        "workers": settings.workers,
        "keys": settings.keys,
        "value_bytes": settings.value_bytes,
        "prefer_minimal": settings.prefer_minimal,
        "rounds": settings.rounds,
        "sources": sources,
        "labels": labels,
        "cpus": os.cpu_count(),
        # Other work on the machine skews every figure: keep the load next to them.
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def measure_workload(
    settings: Settings, wrk: str, target: str, running: Running, workload: str, round_no: int = 1
) -> Measurement:
    """Warm up, then one timed wrk run with the CPU of every process read around it."""

    def command(seconds: int) -> list[str]:
        return wrk_command(
            wrk,
            workload,
            f"http://{HOST}:{running.port}",
            duration_s=seconds,
            connections=settings.connections,
            threads=settings.threads,
            collection=COLLECTION,
            keys=settings.keys,
            value_bytes=settings.value_bytes,
            prefer_minimal=settings.prefer_minimal,
        )

    if settings.warmup > 0:
        run_wrk(command(settings.warmup), settings.warmup)
    roles = {"server": running.server, "backend": running.backend}
    pids = {role: child.pid for role, child in roles.items() if child is not None}
    before = {role: cpu.snapshot([pid]) for role, pid in pids.items()}
    result, _ = run_wrk(command(settings.duration), settings.duration)
    after = {role: cpu.snapshot([pid]) for role, pid in pids.items()}
    for child in (running.server, running.backend):
        if child is not None and child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} died during {workload}:\n{child.log_tail()}")
    cpu_us = {role: cpu.us_per_request(before[role], after[role], result.requests) for role in pids}
    peak_rss = worker_peak_rss(running.server.pid)
    return Measurement(target, workload, result, peak_rss, cpu_us, round_no)


def round_order(targets: Sequence[str], round_no: int) -> Sequence[str]:
    """The targets in the order round ``round_no`` (from 1) measures them:
    reversed every other round, so that a drift of the machine's speed over
    the run weighs on no target more than on another."""
    return targets if round_no % 2 else targets[::-1]


def measure(settings: Settings, wrk: str, log: Any = sys.stderr) -> Report:
    """Start every target, then run every target x workload ``settings.rounds``
    times; returns the report."""
    report = Report(settings=run_settings(settings))
    with (
        tempfile.TemporaryDirectory(prefix="itemstore-bench-") as tmp,
        Children(Path(tmp)) as children,
        ExitStack() as started,
    ):
        running: dict[str, Running] = {}
        for target in settings.targets:
            label = report.label(target)
            print(f"== {label}: starting and preloading {settings.keys:,} keys", file=log)
            running[target] = started.enter_context(
                started_target(children, settings, target, Path(tmp))
            )
        for round_no in range(1, settings.rounds + 1):
            for target in round_order(settings.targets, round_no):
                print(f"== {report.label(target)}, round {round_no}", file=log)
                for workload in settings.workloads:
                    m = measure_workload(settings, wrk, target, running[target], workload, round_no)
                    report.measurements.append(m)
                    result = m.result
                    print(
                        f"   {workload:<6} {result.rps:>10,.0f} req/s  p50 {result.p50_ms:.2f} ms"
                        f"  p99 {result.p99_ms:.2f} ms  errors {result.errors}"
                        f"  CPU µs/req {_cpu_text(m.cpu_us)}"
                        f"  peak RSS/worker {m.peak_rss_mib:.0f} MiB",
                        file=log,
                    )
    report.settings["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _cpu_text(cpu_us: dict[str, float | None]) -> str:
    return " ".join(f"{role} {'-' if us is None else f'{us:,.0f}'}" for role, us in cpu_us.items())


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
        help="comma list of dict (ceiling), itemstore, nocoalesce (itemstore --no-coalesce), "
        "compare (itemstore from --compare-src); default: dict,itemstore,nocoalesce, "
        "and compare with --compare-src",
    )
    parser.add_argument(
        "--dynamodb-impl",
        choices=dynamodb_local.IMPLEMENTATIONS,
        default="moto",
        help="the local DynamoDB of --backend dynamodb (dynalite: npm ci in tests/dynalite)",
    )
    parser.add_argument(
        "--itemstore-src",
        type=Path,
        metavar="DIR",
        help="run the itemstore targets from this source tree (its service/, client/ and "
        "wire/ first on their PYTHONPATH) instead of this checkout",
    )
    parser.add_argument(
        "--compare-src",
        type=Path,
        metavar="DIR",
        help="also run itemstore from this source tree, in the same conditions, as the "
        "target 'compare', and give the ratios itemstore / compare",
    )
    parser.add_argument(
        "--prefer-minimal",
        action="store_true",
        help="every PUT sends 'Prefer: return=minimal' (a server that ignores it answers as usual)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every target and workload this many times, the targets in "
        "alternating order (all started first); each ratio is the median of the "
        "rounds' ratios",
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
    for name in ("duration", "connections", "threads", "workers", "keys", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    try:
        make_value(key_name(0), args.value_bytes)
    except ValueError as exc:
        parser.error(f"--value-bytes: {exc}")
    if args.duration > 600 or args.warmup > 600 or args.warmup < 0:
        parser.error("--duration and --warmup must be between 0 and 600 seconds")
    for flag, src in (("--itemstore-src", args.itemstore_src), ("--compare-src", args.compare_src)):
        if src is not None and (problem := check_source(src)):
            parser.error(f"{flag}: {problem}")
    targets = args.targets or (
        DEFAULT_TARGETS + (("compare",) if args.compare_src is not None else ())
    )
    if "compare" in targets and args.compare_src is None:
        parser.error("the target compare needs --compare-src DIR")
    if args.backend == "dynamodb" and (
        problem := dynamodb_local.missing_reason(args.dynamodb_impl)
    ):
        parser.error(f"--dynamodb-impl {args.dynamodb_impl}: {problem}")
    return (
        Settings(
            backend=args.backend,
            workloads=args.workloads,
            targets=targets,
            duration=args.duration,
            warmup=args.warmup,
            connections=args.connections,
            threads=args.threads,
            workers=args.workers,
            keys=args.keys,
            value_bytes=args.value_bytes,
            dynamodb_impl=args.dynamodb_impl,
            itemstore_src=args.itemstore_src and args.itemstore_src.resolve(),
            compare_src=args.compare_src and args.compare_src.resolve(),
            prefer_minimal=args.prefer_minimal,
            rounds=args.rounds,
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
