"""How fast ``itemstore import`` writes a dump, and in how much memory.

    python -m bench.datacli_import                  # 100,000 small items, SQLite
    python -m bench.datacli_import --backend moto   # DynamoDB on a local moto server
    python -m bench.datacli_import --items 20000 --value-bytes 1000

Writes a dump of ``--items`` items (one collection, str keys, an object of about
``--value-bytes`` bytes each), starts ``itemstore serve`` on 127.0.0.1, then runs
``itemstore import`` and ``itemstore export`` as separate processes and prints
each one's items/s and peak resident memory (VmHWM), and the service's.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench import dynamodb_local
from bench.procs import HOST, Children, free_port, peak_rss_mib
from bench.targets import child_env
from itemstore_wire.exactjson import dumps

# Run as the command, then report the command's own peak memory on stderr
# (``peak_kib`` reads it). VmHWM, not ru_maxrss: Linux keeps ru_maxrss across
# exec (the forking process's own peak), while VmHWM is the new process's.
MEASURED = """
import sys
from pathlib import Path
from itemstore_service.command import main
try:
    main(sys.argv[1:])
finally:
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(line for line in status if line.startswith("VmHWM:"))
    print("peak-kib", peak.split()[1], file=sys.stderr)
"""


def peak_kib(stderr: str) -> int:
    """The peak memory, in KiB, that a ``MEASURED`` command reported."""
    peak = next(line for line in stderr.splitlines() if line.startswith("peak-kib "))
    return int(peak.split()[1])


def write_dump(path: Path, items: int, value_bytes: int) -> None:
    pad = "x" * max(0, value_bytes - 30)
    with path.open("wb") as out:
        for n in range(items):
            record = {"collection": "bench", "key": f"item-{n:08}", "value": {"n": n, "pad": pad}}
            out.write(dumps(record) + b"\n")


def measured(args: list[str], url: str, stdin: Path, stdout: Path) -> tuple[float, float, float]:
    """Run a data command; (seconds, CPU seconds, peak MiB of its process)."""
    env = {**child_env(), "ITEMSTORE_URL": url}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with stdin.open("rb") as source, stdout.open("wb") as out:
        result = subprocess.run(
            [sys.executable, "-c", MEASURED, *args],
            stdin=source,
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if result.returncode != 0:
        raise SystemExit(f"itemstore {' '.join(args)} failed:\n{result.stderr.decode()}")
    return elapsed, cpu, peak_kib(result.stderr.decode()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=60)
    parser.add_argument("--backend", choices=("sqlite", "moto"), default="sqlite")
    options = parser.parse_args()

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="itemstore-cli-")))
        children = stack.enter_context(Children(work))
        dump = work / "dump.jsonl"
        write_dump(dump, options.items, options.value_bytes)
        port = free_port()
        serve = [sys.executable, "-m", "itemstore_service", "serve", "--host", HOST]
        serve += ["--port", str(port), "--log-level", "warning"]
        if options.backend == "sqlite":
            serve += ["--sqlite-path", str(work / "items.sqlite3")]
        else:
            endpoint, _ = stack.enter_context(dynamodb_local.running("moto", child_env()))
            serve += ["--backend", "dynamodb", "--dynamodb-endpoint", endpoint]
            serve += ["--dynamodb-table", "bench-cli", "--dynamodb-create-table"]
        service = children.start("itemstore", serve, child_env())
        children.wait_http(service, port, "/readyz")
        url = f"http://{HOST}:{port}"

        size_mib = dump.stat().st_size / 2**20
        print(f"{options.items} items, {size_mib:.1f} MiB of JSON Lines, {options.backend}")
        runs = {
            "import": measured(["import"], url, dump, Path(os.devnull)),
            "export": measured(["export", "bench"], url, Path(os.devnull), work / "out.jsonl"),
        }
        for name, (took, cpu, peak) in runs.items():
            print(
                f"{name}: {took:.1f} s, {options.items / took:,.0f} items/s, "
                f"{cpu:.1f} CPU s, peak RSS {peak:.0f} MiB"
            )
        print(f"service: peak RSS {peak_rss_mib(service.pid) or 0:.0f} MiB")
        with (work / "out.jsonl").open("rb") as out:
            exported = sum(1 for _ in out)
        if exported != options.items:
            raise SystemExit(f"export wrote {exported} items, not {options.items}")


if __name__ == "__main__":
    main()
