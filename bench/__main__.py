"""`make bench`: run the benchmarks, print their tables, write the figures under bench/results/.

    python -m bench [search|broadcast ...]   (default: all)"""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench import broadcast, search

RESULTS = Path(__file__).resolve().parent / "results"


def write(name: str, rows: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = {"when": stamp, "machine": platform.platform(), "python": platform.python_version(), "rows": rows}
    (RESULTS / f"{name}-{stamp}.json").write_text(json.dumps(payload, indent=2))
    print(f"written: bench/results/{name}-{stamp}.json\n")


def run_search() -> None:
    rows = search.run((1_000, 10_000))
    print(f"{'benchmark':<10} {'catalogue':>9} {'median ms':>10} {'p95 ms':>8} {'baseline ms':>12} "
          f"{'ratio':>7} {'found':>6}")
    for r in rows:
        print(f"{r['benchmark']:<10} {r['catalogue']:>9,} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} "
              f"{r['baseline_median_ms']:>12.3f} {r['ratio_to_baseline']:>7.0f} {r['found_in_top8']:>6.0%}")
    write("search", rows)


def run_broadcast() -> None:
    r = broadcast.run(10_000, 100.0)
    print(f"{'benchmark':<10} {'recipients':>10} {'limit/s':>8} {'sent/s':>7} {'ratio':>6} {'429s':>5} "
          f"{'lost':>5} {'twice':>6} {'seconds':>8}")
    print(f"{r['benchmark']:<10} {r['recipients']:>10,} {r['configured_limit_per_s']:>8.0f} {r['sent_per_s']:>7.1f} "
          f"{r['ratio_to_limit']:>6.3f} {r['answers_429']:>5} {r['lost']:>5} {r['duplicates']:>6} {r['seconds']:>8.1f}")
    write("broadcast", [r])


BENCHMARKS = {"search": run_search, "broadcast": run_broadcast}


def main() -> None:
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(unknown)}; choose among {', '.join(BENCHMARKS)}")
    for name in chosen:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
