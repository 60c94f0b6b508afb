"""The benchmark code itself (no timing is asserted): the fake Bot API's rate limit, the summary
of latencies, the cross-validation config, the table."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from bench import broadcast, e2e, nlu
from bench.__main__ import print_table, rows_botpath, rows_broadcast, rows_e2e, rows_report, rows_scale
from bench.scale import pin_apart, pinning_unavailable


def test_the_fake_bot_api_enforces_its_limit():
    api = broadcast.RateLimitedApi(limit=5)
    answers = [api("sendMessage", {"chat_id": 1}) for _ in range(8)]
    assert answers[:5] == [None] * 5
    assert all(a[0] == 429 and a[1]["parameters"]["retry_after"] == 1 for a in answers[5:])
    assert api.too_many == 3 and api("getUpdates", {}) is None


def test_latency_summary_counts_the_lost():
    numbers = e2e.summary([0.1, 0.2, 0.3, 0.4], expected=5, seconds=2.0)
    assert (numbers["answered"], numbers["lost"], numbers["messages_per_s"]) == (4, 1, 2.0)
    assert round(numbers["median_ms"]) == 250 and round(numbers["p99_ms"]) == 400


def test_cross_validation_folds_hold_every_example_once_and_every_intent():
    examples = [(f"{intent} {i}", intent) for intent in ("greet", "complain", "ask_payment") for i in range(11)]
    folds = nlu.stratified_folds(examples, 5)
    assert sorted(e for fold in folds for e in fold) == sorted(examples)
    assert all({intent for _, intent in fold} == {"greet", "complain", "ask_payment"} for fold in folds)
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert folds == nlu.stratified_folds(list(reversed(examples)), 5), "the same folds at every run"


def test_fold_files_read_back_as_written(tmp_path):
    from bot.nlu_eval import nlu_examples

    examples = [("combien coûte l'écran 27\" ?", "ask_product_info"), ("- dash first: yes", "affirm"),
                ("où en est ma commande #12 ?", "order_status")]
    nlu.write_nlu_file(tmp_path / "f.yml", examples)
    assert sorted(nlu_examples(tmp_path / "f.yml")) == sorted(examples)


def test_thresholds_decide_as_the_fallback_classifier_does():
    row = {"ranking": [["greet", 0.45], ["goodbye", 0.40]]}
    assert nlu.decide(row, 0.4, 0.0) == "greet"
    assert nlu.decide(row, 0.5, 0.0) == "nlu_fallback"
    assert nlu.decide(row, 0.4, 0.1) == "nlu_fallback", "top two closer than the ambiguity threshold"
    assert nlu.decide({"ranking": []}, 0.1, 0.0) == "nlu_fallback"


def test_the_rule_prefers_the_highest_threshold_near_the_best():
    swept = [{"threshold": 0.3, "ambiguity": 0.0, "accuracy": 0.905},
             {"threshold": 0.4, "ambiguity": 0.0, "accuracy": 0.902},
             {"threshold": 0.5, "ambiguity": 0.0, "accuracy": 0.890}]
    assert nlu.choose(swept)["threshold"] == 0.4


def test_search_quality_judges_the_first_answer():
    from bench import search_quality

    assert search_quality.judge("A-1", ["A-1", "A-2"]) and not search_quality.judge("B-1", ["A-1"])
    assert search_quality.judge(None, "not_sold") and not search_quality.judge("A-1", "not_sold")
    questions = search_quality.questions()
    assert len(questions) == 80 and sum(q["expect"] == "not_sold" for q in questions) == 16


def test_the_unseen_catalogue_imports_cleanly(session):
    from bench.search_quality import FOLDER
    from crm.catalog import import_catalog

    assert import_catalog(session, FOLDER / "office.csv").created == 60


def test_one_table(capsys):
    rows = rows_broadcast({"recipients": 10_000, "configured_limit_per_s": 200.0, "sent_per_s": 150.0,
                           "answers_429": 2, "lost": 0, "duplicates": 0, "ratio_to_limit": 0.75})
    rows += rows_e2e({"rows": [{"clients": 10, "ratio_median": 1.25, "rounds": 2,
                                "ours": {"messages": 60, "median_ms": 500, "p95_ms": 700, "p99_ms": 800,
                                         "messages_per_s": 15.0, "lost": 0},
                                "rasa_only": {"median_ms": 400, "p95_ms": 600, "p99_ms": 650,
                                              "messages_per_s": 16.0, "lost": 3},
                                "cpu_ms_per_message": {"rasa": 130.4, "bot": 8.6}}]})
    print_table(rows)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() [:3] == ["area", "case", "measure"] and len(out) == 5
    assert "150.0/s, 2, 0, 0" in out[2] and "0.750" in out[2] and "1.25" in out[3]
    assert "60 messages, 2 rounds" in out[3] and "16.0/s, 3 lost (Rasa REST)" in out[3]
    assert "bot 9, rasa 130" in out[4]


def test_the_bot_path_rows_say_its_cost_or_why_it_was_skipped():
    [row] = rows_botpath({"rows": [{"clients": 20, "messages": 1000, "answered": 998, "doubled": 1,
                                    "bot_cpu_ms_per_message": 5.25, "messages_per_s": 170.0, "median_ms": 90.0,
                                    "straight_median_ms": 30.0}]})
    assert row[3] == "5.25; 170/s; 90.0; 2 lost, 1 doubled" and row[5] == "3.0"
    [skipped] = rows_botpath({"benchmark": "botpath", "skipped": "PostgreSQL or Redis unreachable"})
    assert "skipped: PostgreSQL or Redis unreachable" in skipped[3]


def test_the_scale_rows_name_rasa_apart_and_say_why_it_was_not_measured():
    load = {"median_ms": 150.0, "p95_ms": 300.0, "messages_per_s": 7.0, "lost": 0}
    shape = {"ours": load, "rasa_only": {**load, "median_ms": 140.0}, "doubled": 0, "in_order": True,
             "cpu_ms_per_message": {"rasa": 130.0, "bot": 9.0}, "rasa_workers": 1, "bots": 1}
    result = {"clients": 60, "per_client": 4, "rows": [{**shape, "apart": False}, {**shape, "apart": True}],
              "open_loop": [{**load, "share": 0.9, "clients": 63, "offered_per_s": 6.3, "rasa_workers": 1, "bots": 1,
                             "apart": True, "rasa_only": {**load, "median_ms": 100.0}}], "apart_skipped": None}
    rows = rows_scale(result)
    assert [row[1].split(":")[0] for row in rows[:3:2]] == [
        "1 Rasa worker(s), 1 bot(s)", "1 Rasa worker on a core of its own, 1 bot(s) and the rest on the other"]
    assert rows[2][5] == "1.07" and rows[-1][5] == "1.50" and "core of its own" in rows[-1][1]
    skipped = rows_scale({**result, "rows": [], "open_loop": [], "apart_skipped": "one core only"})
    assert skipped == [("scale", "Rasa on a core of its own", "", "skipped: one core only", "", "")]


def test_rasa_apart_pins_rasa_to_one_core_the_rest_to_the_others_and_undoes_it():
    reason = pinning_unavailable()
    if reason:
        pytest.skip(reason)
    cores = os.sched_getaffinity(0)
    sleeper = [sys.executable, "-c", "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start()"]
    started = {name: subprocess.Popen(sleeper, start_new_session=True) for name in ("rasa", "bot1", "haproxy")}
    try:
        undo = pin_apart(SimpleNamespace(services=SimpleNamespace(processes=started)))
        try:
            first = {min(cores)}
            threads = [int(t) for t in os.listdir(f"/proc/{started['rasa'].pid}/task")]
            assert threads and all(os.sched_getaffinity(t) == first for t in threads)
            assert os.sched_getaffinity(started["bot1"].pid) == cores - first
            assert os.sched_getaffinity(started["haproxy"].pid) == cores - first
            assert os.sched_getaffinity(0) == cores - first, "the bench's own process goes with the bots"
        finally:
            undo()
        assert all(os.sched_getaffinity(p.pid) == cores for p in started.values())
        assert os.sched_getaffinity(0) == cores
    finally:
        for process in started.values():
            process.kill()
            process.wait()


def test_the_report_bench_builds_a_month_on_a_generated_crm(capsys):
    from bench import report

    [result] = report.run((200,), postgres=False)
    assert result["messages"] == 2_000 and 0 < result["active_clients"] <= 200
    assert result["report_ms"] > 0 and result["count_ms"] > 0
    print_table(rows_report([result]))
    assert "200 clients, 2,000 messages, a month (SQLite)" in capsys.readouterr().out
