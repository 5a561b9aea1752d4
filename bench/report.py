"""The benchmark's results and their markdown tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.wrk_driver import WrkResult

TARGET_LABELS = {
    "itemstore": "itemstore",
    "nocoalesce": "itemstore --no-coalesce",
    "compare": "itemstore (compare-src)",
    "dict": "dict server (ceiling)",
}
# Ratios: (JSON key, column header, numerator target, denominator target, quantity);
# "cpu" compares the server's CPU µs per request.
RATIOS = (
    ("itemstore_over_ceiling", "itemstore / ceiling req/s", "itemstore", "dict", "rps"),
    (
        "coalesced_over_uncoalesced",
        "coalesced / uncoalesced req/s",
        "itemstore",
        "nocoalesce",
        "rps",
    ),
    ("itemstore_over_compare", "itemstore / compare req/s", "itemstore", "compare", "rps"),
    ("itemstore_cpu_over_dict", "itemstore / dict CPU µs", "itemstore", "dict", "cpu"),
    ("compare_cpu_over_dict", "compare / dict CPU µs", "compare", "dict", "cpu"),
    ("itemstore_cpu_over_compare", "itemstore / compare CPU µs", "itemstore", "compare", "cpu"),
)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One workload against one target."""

    target: str
    workload: str
    result: WrkResult
    worker_rss_mib: dict[int, float]
    # CPU µs per request of each process tree: "server" (the target), "backend" (DynamoDB).
    cpu_us: dict[str, float | None] = field(default_factory=dict)
    round_no: int = 1

    @property
    def peak_rss_mib(self) -> float:
        return max(self.worker_rss_mib.values(), default=0.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "workload": self.workload,
            "round": self.round_no,
            "rps": round(self.result.rps, 1),
            "requests": self.result.requests,
            "duration_s": round(self.result.duration_s, 3),
            "p50_ms": self.result.p50_ms,
            "p99_ms": self.result.p99_ms,
            "max_ms": self.result.max_ms,
            "non_2xx": self.result.non_2xx,
            "socket_errors": self.result.socket_errors,
            "errors": self.result.errors,
            "peak_rss_mib_per_worker": {
                str(pid): round(rss, 1) for pid, rss in self.worker_rss_mib.items()
            },
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "cpu_us_per_request": {
                role: None if us is None else round(us, 1) for role, us in self.cpu_us.items()
            },
        }

    def quantity(self, name: str) -> float | None:
        """``rps`` or ``cpu`` (the server's CPU µs per request)."""
        return self.result.rps if name == "rps" else self.cpu_us.get("server")


@dataclass
class Report:
    """Every measurement of one run plus the settings it ran with."""

    settings: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return int(self.settings.get("rounds", 1))

    def find(self, target: str, workload: str, round_no: int = 1) -> Measurement | None:
        for m in self.measurements:
            if m.target == target and m.workload == workload and m.round_no == round_no:
                return m
        return None

    def label(self, target: str) -> str:
        labels: dict[str, str] = self.settings.get("labels", {})
        return labels.get(target, TARGET_LABELS.get(target, target))

    def round_ratios(self) -> dict[str, dict[str, list[float | None]]]:
        """workload -> ratio key -> its value in each round (None when a side
        was not measured)."""
        return {
            workload: {
                key: [
                    _ratio(self.find(a, workload, r), self.find(b, workload, r), quantity)
                    for r in range(1, self.rounds + 1)
                ]
                for key, _, a, b, quantity in RATIOS
            }
            for workload in self.settings["workloads"]
        }

    def ratios(self) -> dict[str, dict[str, float | None]]:
        """workload -> ratio key -> the median of its rounds' values (None
        when a side was not measured)."""
        return {
            workload: {key: _median(values) for key, values in by_key.items()}
            for workload, by_key in self.round_ratios().items()
        }

    def as_json(self) -> dict[str, Any]:
        medians = self.ratios()
        return {
            "settings": self.settings,
            "measurements": [m.as_json() for m in self.measurements],
            "ratios": [{"workload": w, **values} for w, values in medians.items()],
            "ratios_by_round": [
                {"workload": w, **values} for w, values in self.round_ratios().items()
            ],
        }

    def markdown(self) -> str:
        s = self.settings
        lines = [
            f"backend **{s['backend']}**, {s['workers']} worker(s), wrk {s['threads']} "
            f"thread(s) x {s['connections']} connections, {s['duration']} s per workload "
            f"after {s['warmup']} s warm-up, {s['keys']:,} keys of {s['value_bytes']} B, "
            f"{s['cpus']} CPUs, 127.0.0.1; load average before {_load(s, 'before')}, "
            f"after {_load(s, 'after')}",
        ]
        if s["backend"] == "dynamodb":
            lines[0] += f"; DynamoDB: {s.get('dynamodb_impl', 'moto')}"
        if s.get("prefer_minimal"):
            lines[0] += "; PUTs send `Prefer: return=minimal`"
        lines += [f"- {self.label(t)}: {src}" for t, src in s.get("sources", {}).items()]
        lines += [
            "- CPU µs/req: utime + stime of every process of the target (server: the "
            "itemstore or dict server and its workers; backend: the DynamoDB process) "
            "over the timed run, per completed request",
            "",
        ]
        several = self.rounds > 1
        if several:
            lines[0] += (
                f"; {self.rounds} rounds, the targets in alternating order; ratios: "
                "the median of the rounds' ratios (lowest-highest)"
            )
        header = [
            *(["round"] if several else []),
            "target",
            "workload",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "CPU µs/req server",
            "CPU µs/req backend",
            "peak RSS/worker MiB",
        ]
        rows = [
            [
                *([str(m.round_no)] if several else []),
                self.label(m.target),
                m.workload,
                f"{m.result.rps:,.0f}",
                f"{m.result.p50_ms:.2f}",
                f"{m.result.p99_ms:.2f}",
                str(m.result.errors),
                _fmt_us(m.cpu_us.get("server")),
                _fmt_us(m.cpu_us.get("backend")),
                f"{m.peak_rss_mib:.0f}",
            ]
            for m in self.measurements
        ]
        lines += markdown_table(header, rows, first_numeric=3 if several else 2)
        ratios = self.ratios()
        by_round = self.round_ratios()
        shown = [(k, h) for k, h, *_ in RATIOS if any(r[k] is not None for r in ratios.values())]
        if shown:
            ratio_rows = [
                [w, *(_fmt_ratio(r[k], by_round[w][k] if several else None) for k, _ in shown)]
                for w, r in ratios.items()
            ]
            ratio_header = ["workload", *(h for _, h in shown)]
            lines += ["", *markdown_table(ratio_header, ratio_rows, first_numeric=1)]
        return "\n".join(lines)


def _load(settings: dict[str, Any], when: str) -> str:
    """The 1-minute load average recorded ``before`` or ``after`` the run."""
    load = settings.get(f"load_average_{when}")
    return f"{load[0]:.1f}" if load else "?"


def _ratio(a: Measurement | None, b: Measurement | None, quantity: str) -> float | None:
    if a is None or b is None:
        return None
    top, bottom = a.quantity(quantity), b.quantity(quantity)
    if top is None or not bottom:
        return None
    return round(top / bottom, 3)


def _fmt_us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _median(values: Sequence[float | None]) -> float | None:
    """The median of the values, None when any is missing."""
    if not values or any(v is None for v in values):
        return None
    return round(statistics.median(v for v in values if v is not None), 3)


def _fmt_ratio(value: float | None, rounds: Sequence[float | None] | None = None) -> str:
    """``2.41x``, with the lowest and highest of ``rounds``: ``2.41x (2.30-2.55)``."""
    if value is None:
        return "-"
    if not rounds:
        return f"{value:.2f}x"
    known = [v for v in rounds if v is not None]
    return f"{value:.2f}x ({min(known):.2f}-{max(known):.2f})"


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], first_numeric: int
) -> list[str]:
    """A markdown table with padded columns; columns from ``first_numeric`` on align right."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    numeric = [i >= first_numeric for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if numeric[i] else "-" * w for i, w in enumerate(widths)]
    return [line(header), line(rule), *(line(r) for r in rows)]
