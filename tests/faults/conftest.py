"""The fault-injection suite's table: for each case, the client messages received, answered,
lost and doubled, printed at the end of the run (and copied into the README)."""

from __future__ import annotations

RESULTS: list[dict] = []


def record(row: dict) -> None:
    RESULTS.append(row)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section("fault injection: client messages")
    terminalreporter.write_line(f"{'case':<58} {'received':>8} {'answered':>8} {'lost':>5} {'doubled':>7}")
    for row in RESULTS:
        terminalreporter.write_line(f"{row['case']:<58} {row['received']:>8} {row['answered']:>8} "
                                    f"{row['lost']:>5} {row['doubled']:>7}")
