"""`make bench`: run the benchmarks, print one table, write the figures under bench/results/."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench import search

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    sizes = tuple(int(x) for x in sys.argv[1:]) or (1_000, 10_000)
    rows = search.run(sizes)
    print(f"{'benchmark':<10} {'catalogue':>9} {'median ms':>10} {'p95 ms':>8} {'baseline ms':>12} "
          f"{'ratio':>7} {'found':>6}")
    for r in rows:
        print(f"{r['benchmark']:<10} {r['catalogue']:>9,} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} "
              f"{r['baseline_median_ms']:>12.3f} {r['ratio_to_baseline']:>7.0f} {r['found_in_top8']:>6.0%}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = {"when": stamp, "machine": platform.platform(), "python": platform.python_version(), "rows": rows}
    (RESULTS / f"search-{stamp}.json").write_text(json.dumps(payload, indent=2))
    print(f"written: bench/results/search-{stamp}.json")


if __name__ == "__main__":
    main()
