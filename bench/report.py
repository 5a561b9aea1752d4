"""The benchmark's results and their markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.wrk_driver import WrkResult

TARGET_LABELS = {
    "itemstore": "itemstore",
    "nocoalesce": "itemstore --no-coalesce",
    "dict": "dict server (ceiling)",
}


@dataclass(frozen=True, slots=True)
class Measurement:
    """One workload against one target."""

    target: str
    workload: str
    result: WrkResult
    worker_rss_mib: dict[int, float]

    @property
    def peak_rss_mib(self) -> float:
        return max(self.worker_rss_mib.values(), default=0.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "workload": self.workload,
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
        }


@dataclass
class Report:
    """Every measurement of one run plus the settings it ran with."""

    settings: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list)

    def find(self, target: str, workload: str) -> Measurement | None:
        for m in self.measurements:
            if m.target == target and m.workload == workload:
                return m
        return None

    def ratios(self) -> list[tuple[str, float | None, float | None]]:
        """(workload, itemstore/ceiling, coalesced/uncoalesced) in requests per second."""
        rows = []
        for workload in self.settings["workloads"]:
            rows.append(
                (
                    workload,
                    _ratio(self.find("itemstore", workload), self.find("dict", workload)),
                    _ratio(self.find("itemstore", workload), self.find("nocoalesce", workload)),
                )
            )
        return rows

    def as_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "measurements": [m.as_json() for m in self.measurements],
            "ratios": [
                {"workload": w, "itemstore_over_ceiling": a, "coalesced_over_uncoalesced": b}
                for w, a, b in self.ratios()
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
            "",
        ]
        header = [
            "target",
            "workload",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "peak RSS/worker MiB",
        ]
        rows = [
            [
                TARGET_LABELS.get(m.target, m.target),
                m.workload,
                f"{m.result.rps:,.0f}",
                f"{m.result.p50_ms:.2f}",
                f"{m.result.p99_ms:.2f}",
                str(m.result.errors),
                f"{m.peak_rss_mib:.0f}",
            ]
            for m in self.measurements
        ]
        lines += _table(header, rows, first_numeric=2)
        ratio_rows = [
            [w, _fmt_ratio(a), _fmt_ratio(b)] for w, a, b in self.ratios() if (a, b) != (None, None)
        ]
        if ratio_rows:
            ratio_header = ["workload", "itemstore / ceiling", "coalesced / uncoalesced"]
            lines += ["", *_table(ratio_header, ratio_rows, first_numeric=1)]
        return "\n".join(lines)


def _load(settings: dict[str, Any], when: str) -> str:
    """The 1-minute load average recorded ``before`` or ``after`` the run."""
    load = settings.get(f"load_average_{when}")
    return f"{load[0]:.1f}" if load else "?"


def _ratio(a: Measurement | None, b: Measurement | None) -> float | None:
    if a is None or b is None or b.result.rps == 0:
        return None
    return round(a.result.rps / b.result.rps, 3)


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], first_numeric: int) -> list[str]:
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
