"""The benchmark code itself (no timing is asserted): the fake Bot API's rate limit, the summary
of latencies, the cross-validation config, the table."""

from __future__ import annotations

import yaml

from bench import broadcast, e2e, nlu
from bench.__main__ import print_table, rows_broadcast, rows_e2e


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


def test_cross_validation_changes_only_the_epochs(tmp_path):
    config = yaml.safe_load(nlu.cv_config(tmp_path, 25).read_text())
    original = yaml.safe_load((nlu.ROOT / "config.yml").read_text())
    diet = next(c for c in config["pipeline"] if c["name"] == "DIETClassifier")
    assert diet["epochs"] == 25
    diet["epochs"] = next(c for c in original["pipeline"] if c["name"] == "DIETClassifier")["epochs"]
    assert config == original


def test_one_table(capsys):
    rows = rows_broadcast({"recipients": 10_000, "configured_limit_per_s": 200.0, "sent_per_s": 150.0,
                           "answers_429": 2, "lost": 0, "duplicates": 0, "ratio_to_limit": 0.75})
    rows += rows_e2e({"rows": [{"clients": 10, "ratio_median": 1.25,
                                "ours": {"messages": 30, "median_ms": 500, "p95_ms": 700, "p99_ms": 800,
                                         "messages_per_s": 15.0, "lost": 0},
                                "rasa_only": {"median_ms": 400, "p95_ms": 600, "p99_ms": 650}}]})
    print_table(rows)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() [:3] == ["area", "case", "measure"] and len(out) == 4
    assert "150.0/s, 2, 0, 0" in out[2] and "0.750" in out[2] and "1.25" in out[3]
