"""`make bench`: how well, how fast and at what cost the assistant works, measured in one run
against baselines measured in the same run. Prints one table; writes every figure (per-intent
scores, confusions, per-size and per-load details) to bench/results/bench-<time>.json.

    python -m bench [nlu] [search] [e2e] [broadcast] [report] [scale] [botpath]
    (default: all; cost comes with e2e)"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import botpath, broadcast, e2e, nlu, report, scale, search, search_quality

RESULTS = Path(__file__).resolve().parent / "results"
SEARCH_SIZES = (1_000, 10_000, 100_000)
LOADS = (10, 50, 200)
BROADCAST_RECIPIENTS, BROADCAST_LIMIT = 10_000, 200.0
REPORT_SIZES = (1_000, 100_000)
BENCHMARKS = ("nlu", "search", "e2e", "broadcast", "report", "scale", "botpath")


def rows_nlu(result: dict) -> list[tuple]:
    rows = []
    for s in result["sets"]:
        before = s.get("baseline") or {}
        rows.append(("understanding", f"{s['set']} ({s['examples']})", "accuracy / macro-F1",
                     f"{s['accuracy']:.3f} / {s['macro_f1']:.3f}",
                     f"{before['accuracy']:.3f} / {before['macro_f1']:.3f} (previous pipeline)" if before.get("accuracy") is not None else "",
                     f"{s['accuracy'] / before['accuracy']:.2f}" if before.get("accuracy") else ""))
    timed = [s for s in result["sets"] if s.get("parse_ms_p50") is not None]
    if timed:
        s = max(timed, key=lambda s: s["examples"])
        before = s.get("baseline") or {}
        rows.append(("understanding", f"parse one message ({s['set']})", "p50 / p95 ms",
                     f"{s['parse_ms_p50']:.1f} / {s['parse_ms_p95']:.1f}",
                     f"{before['parse_ms_p50']:.1f} / {before['parse_ms_p95']:.1f} (previous pipeline)" if before.get("parse_ms_p50") else "",
                     f"{s['parse_ms_p50'] / before['parse_ms_p50']:.2f}" if before.get("parse_ms_p50") else ""))
    cv = result.get("cross_validation") or {}
    if "macro_f1" in cv:
        chosen = cv["chosen_by_rule"]
        rows.append(("understanding", f"{cv['folds']}-fold cross-validation of nlu/ (threshold {cv['threshold']}, "
                     f"ambiguity {cv['ambiguity_threshold']})", "accuracy / macro-F1",
                     f"{cv['accuracy']:.3f} / {cv['macro_f1']:.3f}", "", ""))
        rows.append(("understanding", "fallback thresholds chosen by the cross-validation rule", "threshold / ambiguity",
                     f"{chosen['threshold']} / {chosen['ambiguity']} (accuracy {chosen['accuracy']:.3f})", "", ""))
    elif cv:
        rows.append(("understanding", "cross-validation", "failed", cv.get("error", "")[:60], "", ""))
    return rows


def rows_search(result: list[dict]) -> list[tuple]:
    rows = []
    for r in result:
        rows.append(("product search", f"{r['catalogue']:,} products, misspelled name (words + meaning)",
                     f"median / p95 ms (found {r['found_in_top8']:.0%})", f"{r['median_ms']:.1f} / {r['p95_ms']:.1f}",
                     f"{r['baseline_median_ms']:.1f} (SQL LIKE)", f"{r['ratio_to_baseline']:.1f}"))
        if r.get("encode_ms_per_product") is not None:
            rows.append(("product search", f"{r['catalogue']:,} products, import",
                         "encoding ms a product / vectors in memory MB",
                         f"{r['encode_ms_per_product']:.2f} / {r['vectors_mb']:.0f}", "", ""))
    return rows


def rows_search_quality(result: dict) -> list[tuple]:
    ours, base = result["ours"], result["baseline"]
    dev, words = result["dev"], result["dev_words_only"]
    return [("product search", f"demo catalogue, development set ({dev['questions']} questions, tuned on)",
             "named product first / honest \"not sold\"",
             f"{dev['named_first']:.3f} ({dev['named']}) / {dev['honest_not_sold']:.3f} ({dev['not_sold']})",
             f"{words['named_first']:.3f} / {words['honest_not_sold']:.3f} (words alone)",
             f"{dev['named_first'] / words['named_first']:.1f}" if words["named_first"] else ""),
            ("product search", f"unseen catalogue ({ours['catalogue']}, {ours['questions']} questions)",
             "named product first / honest \"not sold\"",
             f"{ours['named_first']:.3f} ({ours['named']}) / {ours['honest_not_sold']:.3f} ({ours['not_sold']})",
             f"{base['named_first']:.3f} / {base['honest_not_sold']:.3f} (any word matched)",
             f"{ours['honest_not_sold'] / base['honest_not_sold']:.1f}" if base["honest_not_sold"] else "")]


def rows_e2e(result: dict) -> list[tuple]:
    rows = []
    for r in result["rows"]:
        ours, base = r["ours"], r["rasa_only"]
        rounds = f", {r['rounds']} rounds" if r.get("rounds", 1) > 1 else ""
        rows.append(("end to end", f"{r['clients']} clients at once, {ours['messages']} messages{rounds}",
                     "median / p95 / p99 ms, msg/s, lost",
                     f"{ours['median_ms']:.0f} / {ours['p95_ms']:.0f} / {ours['p99_ms']:.0f}, "
                     f"{ours['messages_per_s']:.1f}/s, {ours['lost']} lost",
                     f"{base['median_ms']:.0f} / {base['p95_ms']:.0f} / {base['p99_ms']:.0f}, "
                     f"{base['messages_per_s']:.1f}/s, {base['lost']} lost (Rasa REST)",
                     f"{r['ratio_median']:.2f}" if r["ratio_median"] else ""))
        if r.get("cpu_ms_per_message"):
            rows.append(("end to end", f"  CPU per message ({r['clients']} clients)", "ms",
                         ", ".join(f"{name} {ms:.0f}" for name, ms in sorted(r["cpu_ms_per_message"].items())), "", ""))
    return rows


def rows_cost(result: dict, training: dict | None) -> list[tuple]:
    rows = []
    if training:
        how = "with Rasa's component cache" if training.get("component_cache") else "from scratch"
        rows.append(("cost", f"training the model ({how}, {training.get('processors', '?')} cores)", "seconds",
                     f"{training['seconds']:.0f}", "", ""))
    else:
        rows.append(("cost", "training the model", "seconds", "not recorded (trained before this version)", "", ""))
    for name, seconds in result["ready_s"].items():
        rows.append(("cost", f"{name}: start to ready", "seconds", f"{seconds:.1f}", "", ""))
    for name, mb in result["rss_mb"].items():
        rows.append(("cost", f"{name}: resident memory after the load", "MB", f"{mb:.0f}", "", ""))
    return rows


def rows_broadcast(r: dict) -> list[tuple]:
    return [("broadcast", f"{r['recipients']:,} recipients, limit enforced by the fake Bot API",
             "sent/s, 429s, lost, twice", f"{r['sent_per_s']:.1f}/s, {r['answers_429']}, {r['lost']}, {r['duplicates']}",
             f"{r['configured_limit_per_s']:.0f}/s (configured)", f"{r['ratio_to_limit']:.3f}")]


def rows_report(result: list[dict]) -> list[tuple]:
    return [("report", f"{r['clients']:,} clients, {r['messages']:,} messages, a month ({r['database']})",
             "build ms (render: text, charts, PDF)", f"{r['report_ms']:.0f} ({r['render_ms']:.0f})",
             f"{r['count_ms']:.1f} (one COUNT(*) of the messages)", f"{r['ratio']:.0f}" if r["ratio"] else "")
            for r in result]


def rows_scale(result: dict) -> list[tuple]:
    if result.get("skipped"):
        return [("scale", "replica layout", "", f"skipped: {result['skipped']}", "", "")]
    rows = []
    for r in result["rows"]:
        ours, base = r["ours"], r["rasa_only"]
        checked = f"{ours['lost']} lost, {r['doubled']} doubled, order {'kept' if r['in_order'] else 'BROKEN'}"
        rows.append(("scale", f"{shape_name(r)}: {result['clients']} clients x {result['per_client']}",
                     "median / p95 ms, msg/s; checked",
                     f"{ours['median_ms']:.0f} / {ours['p95_ms']:.0f}, {ours['messages_per_s']:.1f}/s; {checked}",
                     f"{base['median_ms']:.0f} / {base['p95_ms']:.0f}, {base['messages_per_s']:.1f}/s (Rasa REST)",
                     f"{ours['median_ms'] / base['median_ms']:.2f}" if base["median_ms"] else ""))
        cpu = r["cpu_ms_per_message"]
        rows.append(("scale", f"  CPU per message ({shape_name(r)})", "ms",
                     ", ".join(f"{name} {ms:.0f}" for name, ms in sorted(cpu.items())), "", ""))
    if result.get("apart_skipped"):
        rows.append(("scale", "Rasa on a core of its own", "", f"skipped: {result['apart_skipped']}", "", ""))
    if result.get("workers_2_over_1"):
        rows.append(("scale", "messages a second, 2 Rasa workers over 1 (1 bot)", "ratio",
                     f"{result['workers_2_over_1']:.2f}", f"{result['workers_2_over_1_rasa_only']:.2f} (Rasa REST)", ""))
    for r in result["open_loop"]:
        base = r.get("rasa_only") or {}
        rows.append(("scale", f"open loop, {shape_name(r)}, at {r['share']:.0%} of capacity ({r['offered_per_s']:.1f} "
                              f"msg/s, {r['clients']} clients every 5-15 s)", "median / p95 ms, lost",
                     f"{r['median_ms']:.0f} / {r['p95_ms']:.0f}, {r['lost']} lost",
                     f"{base['median_ms']:.0f} / {base['p95_ms']:.0f}, {base['lost']} lost (Rasa REST)" if base else "",
                     f"{r['median_ms'] / base['median_ms']:.2f}" if base.get("median_ms") else ""))
    return rows


def shape_name(r: dict) -> str:
    if r.get("apart"):
        return f"{r['rasa_workers']} Rasa worker on a core of its own, {r['bots']} bot(s) and the rest on the other"
    return f"{r['rasa_workers']} Rasa worker(s), {r['bots']} bot(s)"


def rows_botpath(result: dict) -> list[tuple]:
    if result.get("skipped"):
        return [("bot path", "the bot alone", "", f"skipped: {result['skipped']}", "", "")]
    return [("bot path", f"the bot alone, instant Rasa stand-in: {r['clients']} client(s), {r['messages']} messages",
             "bot CPU ms a message; msg/s; median ms; checked",
             f"{r['bot_cpu_ms_per_message']:.2f}; {r['messages_per_s']:.0f}/s; {r['median_ms']:.1f}; "
             f"{r['messages'] - r['answered']} lost, {r['doubled']} doubled",
             f"{r['straight_median_ms']:.1f} (the stand-in asked straight)",
             f"{r['median_ms'] / r['straight_median_ms']:.1f}" if r["straight_median_ms"] else "")
            for r in result["rows"]]


def training_record() -> dict | None:
    from bot.rasa_model import model_path, training_record as record

    path = record(model_path())
    return json.loads(path.read_text()) if path.exists() else None


def print_table(rows: list[tuple]) -> None:
    header = ("area", "case", "measure", "value", "baseline (same run)", "ratio")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))


def main() -> None:
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(sorted(unknown))}; choose among {', '.join(BENCHMARKS)}")
    started = time.perf_counter()
    figures: dict = {}
    rows: list[tuple] = []
    if "nlu" in chosen:
        figures["nlu"] = nlu.run()
        rows += rows_nlu(figures["nlu"])
    if "search" in chosen:
        figures["search"] = search.run(SEARCH_SIZES)
        rows += rows_search(figures["search"])
        figures["search_quality"] = {"ours": search_quality.run(), "baseline": search_quality.run(strict=False),
                                     "dev": search_quality.run(search_quality.DEV_CATALOGUE, questions_file=search_quality.DEV_QUESTIONS),
                                     "dev_words_only": search_quality.run(search_quality.DEV_CATALOGUE, questions_file=search_quality.DEV_QUESTIONS,
                                                                          by_meaning=False)}
        rows += rows_search_quality(figures["search_quality"])
    if "e2e" in chosen:
        figures["e2e"] = e2e.run(LOADS)
        figures["training"] = training_record()
        rows += rows_e2e(figures["e2e"])
        rows += rows_cost(figures["e2e"], figures["training"])
    if "broadcast" in chosen:
        figures["broadcast"] = broadcast.run(BROADCAST_RECIPIENTS, BROADCAST_LIMIT)
        rows += rows_broadcast(figures["broadcast"])
    if "report" in chosen:
        figures["report"] = report.run(REPORT_SIZES)
        rows += rows_report(figures["report"])
    if "scale" in chosen:
        figures["scale"] = scale.run()
        rows += rows_scale(figures["scale"])
    if "botpath" in chosen:
        figures["botpath"] = botpath.run()
        rows += rows_botpath(figures["botpath"])
    print()
    print_table(rows)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    machine = {"platform": platform.platform(), "python": platform.python_version(),
               "processors": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps({"when": stamp, "machine": machine, "seconds": round(time.perf_counter() - started),
                                "table": rows, "figures": figures}, indent=2, ensure_ascii=False))
    print(f"\n{len(rows)} figures in {time.perf_counter() - started:.0f} s; written: {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
