"""One hot key under many clients: atomic increments against blind PUTs of the same
key, then a check that the counter counted every increment it acknowledged.

    python -m bench.hot_counter [--backend sqlite|moto|dynalite] [--workers N]
                                [--clients 64] [--seconds 5]

Starts ``itemstore serve`` on 127.0.0.1 (a SQLite file in a temporary folder, or
DynamoDB on a local moto or dynalite process of its own), puts the counter
``{"n": 0}``, then runs two closed-loop workloads on that one key
(``bench/closed_loop.py``), each after a warm-up:

* ``increment``: ``PATCH`` with ``{"increment": {"n": 1}}``;
* ``put``: ``PUT`` of ``{"n": 0}`` with ``Prefer: return=minimal``, the cheapest
  write of the same key: the ceiling the increments compare to.

Per workload it prints 2xx answers per second, p50/p99 latency, answers by status
(``503 contended`` apart: on DynamoDB a hot key may answer it, nothing applied, and
it is no failure; any other non-2xx answer, or none, is), and the CPU µs per request
of the service's processes, of the DynamoDB process and of this load client, read
from ``/proc``. Between the two workloads it reads the counter (a consistent GET)
and compares it with the increments answered 200, warm-up included. Exit status 1
when they differ or when a request failed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from bench import cpu, dynamodb_local
from bench.closed_loop import LoadResult, Request, run_closed_loop
from bench.procs import HOST, Children
from bench.report import markdown_table
from bench.targets import Running, Settings, started_target

COLLECTION: Final = "bench"
KEY: Final = "hot"
ITEM_PATH: Final = f"/collections/{COLLECTION}/items/{KEY}"
CONTENDED: Final = "503 contended"
JSON: Final = {"Content-Type": "application/json"}
INCREMENT: Final = Request("PATCH", ITEM_PATH, orjson.dumps({"increment": {"n": 1}}), JSON)
PUT: Final = Request("PUT", ITEM_PATH, orjson.dumps({"n": 0}), {**JSON, "Prefer": "return=minimal"})
WORKLOADS: Final = {"increment": INCREMENT, "put": PUT}


@dataclass(frozen=True, slots=True)
class Measured:
    """One workload's timed run and the CPU it cost per request, by role."""

    workload: str
    result: LoadResult
    cpu_us: dict[str, float | None]

    @property
    def ops_per_s(self) -> float:
        return self.result.successes / self.result.elapsed_s

    @property
    def failures(self) -> dict[str, int]:
        """Answers that are neither 2xx nor ``503 contended``, and requests never answered."""
        return {
            label: n
            for label, n in self.result.answers.items()
            if not label.startswith("2") and label != CONTENDED
        }

    def as_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "workload": self.workload,
            "ops_per_s": round(self.ops_per_s, 1),
            "requests": r.requests,
            "successes": r.successes,
            "elapsed_s": round(r.elapsed_s, 3),
            "p50_ms": r.percentile_ms(50),
            "p99_ms": r.percentile_ms(99),
            "answers": dict(r.answers),
            "contended": r.count(CONTENDED),
            "failures": self.failures,
            "cpu_us_per_request": {
                role: None if us is None else round(us, 1) for role, us in self.cpu_us.items()
            },
        }


@dataclass(frozen=True, slots=True)
class CounterCheck:
    """The counter as read after the increments, against the increments answered 200."""

    value: Any
    answered_200: int

    @property
    def equal(self) -> bool:
        # 3.0 or true would compare equal to 3 in Python; a counter must stay an integer.
        return type(self.value) is int and self.value == self.answered_200

    def text(self) -> str:
        verdict = "equal" if self.equal else "DIFFERENT: the counter is wrong"
        return (
            f"counter check: the counter reads {self.value}, increments answered 200: "
            f"{self.answered_200:,} ({verdict})"
        )


def http_call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request to 127.0.0.1:port outside the load; (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(JSON) if body is not None else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def create_counter(port: int) -> None:
    """Put the counter ``{"n": 0}``; it must be new."""
    status, body = http_call(port, "PUT", ITEM_PATH, orjson.dumps({"n": 0}))
    if status != 201:
        raise RuntimeError(f"creating the counter answered {status}: {body[:500]!r}")


def check_counter(port: int, answered_200: int) -> CounterCheck:
    """Read the counter's ``n`` (strongly consistent) and hold it against ``answered_200``."""
    status, body = http_call(port, "GET", f"{ITEM_PATH}?consistent=true")
    if status != 200:
        raise RuntimeError(f"GET of the counter answered {status}: {body[:500]!r}")
    return CounterCheck(orjson.loads(body)["n"], answered_200)


def measure(running: Running, workload: str, clients: int, seconds: float) -> Measured:
    """One timed closed-loop run with the CPU of the service's and DynamoDB's trees read
    around it."""
    url = f"http://{HOST}:{running.port}"
    roles = {"itemstore": running.server, "dynamodb": running.backend}
    pids = {role: child.pid for role, child in roles.items() if child is not None}
    before = {role: cpu.snapshot([pid]) for role, pid in pids.items()}
    result = run_closed_loop(url, WORKLOADS[workload], clients=clients, seconds=seconds)
    after = {role: cpu.snapshot([pid]) for role, pid in pids.items()}
    for child in roles.values():
        if child is not None and child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} died during {workload}:\n{child.log_tail()}")
    answered = result.requests
    cpu_us = {role: cpu.us_per_request(before[role], after[role], answered) for role in pids}
    cpu_us["client"] = result.client_cpu_s * 1e6 / answered if answered else None
    return Measured(workload, result, cpu_us)


@dataclass
class Report:
    """Both workloads' measurements, the counter check and the settings they ran with."""

    settings: dict[str, Any]
    measured: list[Measured]
    counter: CounterCheck

    @property
    def ratio(self) -> float | None:
        """Increments/s over puts/s."""
        ops = {m.workload: m.ops_per_s for m in self.measured}
        return ops["increment"] / ops["put"] if ops.get("put") else None

    @property
    def failed(self) -> bool:
        return not self.counter.equal or any(m.failures for m in self.measured)

    def as_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "workloads": [m.as_json() for m in self.measured],
            "increments_over_puts": None if self.ratio is None else round(self.ratio, 3),
            "counter": {
                "value": self.counter.value,
                "increments_answered_200": self.counter.answered_200,
                "equal": self.counter.equal,
            },
        }

    def markdown(self) -> str:
        s = self.settings
        load = s["load_average"]
        lines = [
            f"backend **{s['backend']}**, {s['workers']} worker(s), {s['clients']} clients "
            f"in a closed loop on one key, {s['seconds']:g} s per workload after "
            f"{s['warmup']:g} s warm-up, {s['cpus']} CPUs, 127.0.0.1; load average "
            f"before {load['before'][0]:.1f}, after {load['after'][0]:.1f}",
            "",
        ]
        header = [
            "workload",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "2xx",
            "503 contended",
            "failed",
            "CPU µs/req itemstore",
            "CPU µs/req DynamoDB",
            "CPU µs/req client",
        ]
        rows = [
            [
                m.workload,
                f"{m.ops_per_s:,.0f}",
                _fmt(m.result.percentile_ms(50), ".2f"),
                _fmt(m.result.percentile_ms(99), ".2f"),
                f"{m.result.successes:,}",
                f"{m.result.count(CONTENDED):,}",
                ", ".join(f"{label}: {n:,}" for label, n in m.failures.items()) or "0",
                _fmt(m.cpu_us.get("itemstore"), ",.0f"),
                _fmt(m.cpu_us.get("dynamodb"), ",.0f"),
                _fmt(m.cpu_us.get("client"), ",.0f"),
            ]
            for m in self.measured
        ]
        lines += markdown_table(header, rows, first_numeric=1)
        lines += ["", f"increments/s ÷ puts/s: {_fmt(self.ratio, '.2f')}", self.counter.text()]
        return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@dataclass(frozen=True, slots=True)
class Options:
    """The command line's options."""

    backend: str
    workers: int
    clients: int
    seconds: float
    warmup: float
    json_out: Path | None


def warm_and_measure(
    running: Running, workload: str, options: Options, log: Any
) -> tuple[int, Measured]:
    """A warm-up, then the timed run; the warm-up's 200 answers and the measurement."""
    warm_200 = 0
    if options.warmup > 0:
        url = f"http://{HOST}:{running.port}"
        request = WORKLOADS[workload]
        warm_200 = run_closed_loop(
            url, request, clients=options.clients, seconds=options.warmup
        ).count("200")
    m = measure(running, workload, options.clients, options.seconds)
    print(f"   {workload}: {m.ops_per_s:,.0f} ops/s, answers {dict(m.result.answers)}", file=log)
    return warm_200, m


def run(options: Options, log: Any = sys.stderr) -> Report:
    """Start the service, run both workloads and the check; every process is stopped after."""
    impl = None if options.backend == "sqlite" else options.backend
    # bench.run's settings, to start the service as it does: no keys to preload.
    settings = Settings(
        backend="dynamodb" if impl else "sqlite",
        workloads=tuple(WORKLOADS),
        targets=("itemstore",),
        duration=round(options.seconds),
        warmup=round(options.warmup),
        connections=options.clients,
        threads=1,
        workers=options.workers,
        keys=0,
        value_bytes=0,
        dynamodb_impl=impl or "moto",
    )
    load_before = [round(x, 2) for x in os.getloadavg()]
    with (
        tempfile.TemporaryDirectory(prefix="itemstore-hot-counter-") as tmp,
        Children(Path(tmp)) as children,
        started_target(children, settings, "itemstore", Path(tmp)) as running,
    ):
        create_counter(running.port)
        warm_200, increments = warm_and_measure(running, "increment", options, log)
        counter = check_counter(running.port, warm_200 + increments.result.count("200"))
        print(f"   {counter.text()}", file=log)
        _, puts = warm_and_measure(running, "put", options, log)
    report_settings = {
        "backend": options.backend,
        "workers": options.workers,
        "clients": options.clients,
        "seconds": options.seconds,
        "warmup": options.warmup,
        "cpus": os.cpu_count(),
        "load_average": {
            "before": load_before,
            "after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    return Report(report_settings, [increments, puts], counter)


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hot_counter", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--backend", choices=("sqlite", *dynamodb_local.IMPLEMENTATIONS))
    parser.add_argument("--workers", type=int, default=2, help="service worker processes")
    parser.add_argument("--clients", type=int, default=64, help="concurrent closed loops")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured per workload")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    parser.set_defaults(backend="sqlite")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 16 or not 1 <= args.clients <= 1024:
        parser.error("--workers must be 1 to 16 and --clients 1 to 1024")
    if not 0 < args.seconds <= 60 or not 0 <= args.warmup <= 60:
        parser.error("--seconds must be above 0 and --warmup at least 0, both at most 60")
    if args.backend != "sqlite" and (problem := dynamodb_local.missing_reason(args.backend)):
        parser.error(f"--backend {args.backend}: {problem}")
    return Options(
        args.backend, args.workers, args.clients, args.seconds, args.warmup, args.json_out
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    try:
        report = run(options)
    except KeyboardInterrupt:
        print("interrupted: every started process was stopped", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(report.markdown())
    if options.json_out is not None:
        options.json_out.write_bytes(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
