"""Start-up time of ``riskmap --help`` and ``riskmap layers`` against ``python -c pass``.

Run: ``.venv/bin/python bench/cli_startup.py [--store data/demo.gpkg] [--runs 5]``; prints the
median wall time of each and the ratio to the bare interpreter measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", default=None, help="a store for `riskmap layers`")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    cli = [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main())"]
    base = _median([sys.executable, "-c", "pass"], a.runs)
    cases = {"riskmap --help": [*cli, "--help"]}
    if a.store:
        cases["riskmap layers"] = [*cli, "layers", "--store", a.store]
    print(f"{'python -c pass':<18} {base:6.3f} s")
    for name, argv in cases.items():
        t = _median(argv, a.runs)
        print(f"{name:<18} {t:6.3f} s  ({t / base:5.1f}x baseline)")


if __name__ == "__main__":
    main()
