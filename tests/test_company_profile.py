"""company.yml: every error named with its key and line, a typo never silences the assistant
(the last good version stays in use, admins are told once), a broken file stops start-up."""

from __future__ import annotations

import logging
import os

import pytest
import yaml
from sqlalchemy import select

from crm.alerts import alert_profile_refused
from crm.company import ProfileError, company_profile, load, policy_answer, profile_problem
from crm.db import unit_of_work
from crm.models import Notification
from crm.settings import ROOT
from crm.settings import install as install_settings
from crm.staff import add_staff
from tests.harness import at_once
from tests.test_settings_cli import cli

GOOD = (ROOT / "company.yml").read_text(encoding="utf-8")


def write(path, text: str, tick: int) -> None:
    """Write the file with a distinct modification time (what an editor's save gives)."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, (1_800_000_000 + tick, 1_800_000_000 + tick))


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


@pytest.fixture
def profile(tmp_path, monkeypatch):
    path = tmp_path / "company.yml"
    write(path, GOOD, 0)
    monkeypatch.setenv("COMPANY_PROFILE", str(path))
    install_settings(None)  # read again, with it
    return path


@pytest.mark.parametrize("old,new,expected", [
    ('hours: {mon: "09:00-18:00"', 'hours: {mon: "9h-18h"', "desk.hours: mon: '9h-18h' is not HH:MM-HH:MM"),
    ('hours: {mon: "09:00-18:00"', 'hours: {mon: "18:00-09:00"', "desk.hours: mon: '18:00-09:00' closes before"),
    ("timezone: Europe/Paris", "timezone: Europe/Pariss", "desk.timezone: 'Europe/Pariss' is not a time zone"),
    ("queue_timeout_minutes: 120", "queue_timout_minutes: 120", "desk.queue_timout_minutes: unknown key"),
    ("unanswered_after_minutes: 10", "unanswered_after_minutes: ten", "desk.unanswered_after_minutes: Input should "
                                                                      "be a valid integer"),
    ("handoff_severities: [critical]", "handoff_severities: [urgent]", "desk.handoff_severities.0: Input should be"),
    ("hot_threshold: 70", "hot_threshold: 170", "leads.hot_threshold: Input should be less than or equal to 100"),
    ("- [5000, 20]", "- [5000, lots]", "leads.score.budget.1.1: Input should be a valid integer"),
    ("length_minutes: 30", "length_minutes: -3", "meetings.length_minutes: Input should be greater than or equal"),
    ("remind_before_minutes: [1440, 60]", "remind_before_minutes: [1440, soon]", "meetings.remind_before_minutes.1"),
    ("cancellable_statuses: [confirmed, preparing]", "cancellable_statuses: [confirmed, packed]",
     "orders.cancellable_statuses.1: Input should be"),
    ("    en: \"We accept card", "    english: \"We accept card", "answers.ask_payment.english: unknown key"),
    ("attribution_days: 7", "attribution_days: 0", "reports.attribution_days: Input should be greater than or equal"),
    ('monthly_at: "09:00"', 'monthly_at: "9 am"', "reports.monthly_at: "),
])
def test_each_error_names_the_key_and_its_line(tmp_path, old, new, expected):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = tmp_path / "company.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as refused:
        load(path)
    assert f"company.yml line {line_of(text, new)}: {expected}" in str(refused.value)


def test_a_missing_answer_and_broken_yaml_are_located_too(tmp_path):
    path = tmp_path / "company.yml"
    text = GOOD.replace("  ask_loyalty:", "  ask_loyalty_programme:", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as refused:
        load(path)
    assert "answers.ask_loyalty: Field required" in str(refused.value)
    assert f"line {line_of(text, 'ask_loyalty_programme')}: answers.ask_loyalty_programme: unknown key" \
        in str(refused.value)
    broken = GOOD.replace('  ask_payment:\n    fr: "', '  ask_payment:\n    fr: "[oops\n  "', 1)
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ProfileError, match=r"company.yml line \d+: not valid YAML"):
        load(path)


def test_a_typo_keeps_the_last_good_profile_and_is_said(profile, caplog):
    assert policy_answer("ask_delivery", "fr").startswith("Livraison en France")
    write(profile, GOOD.replace("Livraison en France", "Livraison partout") + "\ndesk: [oops\n", 1)
    with caplog.at_level(logging.ERROR, logger="crm.company"):
        assert policy_answer("ask_delivery", "fr").startswith("Livraison en France"), "the last good version"
        assert company_profile()["desk"]["timezone"] == "Europe/Paris"
    assert any("last valid version stays in use" in r.getMessage() for r in caplog.records)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1, "logged once per version, not per call"
    assert "not valid YAML" in profile_problem()[1]

    write(profile, GOOD.replace("Livraison en France", "Livraison partout"), 2)  # fixed
    assert policy_answer("ask_delivery", "fr").startswith("Livraison partout")
    assert profile_problem() is None


def test_admins_are_told_once_per_refused_version(engine, profile):
    with unit_of_work(engine) as s:
        add_staff(s, 9001, "admin", "John")
        add_staff(s, 9002, "manager", "Claire")
    company_profile()
    with unit_of_work(engine) as s:
        assert alert_profile_refused(s) == 0, "nothing to say about a good file"
    write(profile, GOOD.replace("hot_threshold: 70", "hot_threshold: 170"), 1)

    def alert(_):
        with unit_of_work(engine) as s:
            return alert_profile_refused(s)

    assert sorted(at_once(3, alert)) == [0, 0, 1], "three processes notice: one tells"
    with unit_of_work(engine) as s:
        assert alert_profile_refused(s) == 0, "once"
        told = list(s.scalars(select(Notification)))
    assert [n.chat_id for n in told] == [9001], "the admins"
    assert told[0].text.startswith("⚠️ company.yml a été refusé et n'est pas appliqué : company.yml line ")
    assert "leads.hot_threshold" in told[0].text and "dernière version valide" in told[0].text

    write(profile, GOOD.replace("hot_threshold: 70", "hot_threshold: -1"), 2)  # another broken version
    with unit_of_work(engine) as s:
        assert alert_profile_refused(s) == 1


def test_with_no_admin_the_managers_are_told(engine, profile):
    with unit_of_work(engine) as s:
        add_staff(s, 9002, "manager", "Claire")
    company_profile()
    write(profile, GOOD.replace("length_minutes: 30", "length_minutes: 0"), 1)
    with unit_of_work(engine) as s:
        assert alert_profile_refused(s) == 1
        assert s.scalar(select(Notification.chat_id)) == 9002


def test_a_broken_profile_stops_start_up_with_the_reason(tmp_path):
    path = tmp_path / "company.yml"
    text = GOOD.replace("timezone: Europe/Paris", "timezone: Mars/Olympus")
    path.write_text(text, encoding="utf-8")
    result = cli("staff", "list", database_url=f"sqlite:///{tmp_path / 'x.db'}", extra_env={"COMPANY_PROFILE": str(path)})
    assert result.returncode != 0
    assert (f"Configuration error in the company profile: company.yml line {line_of(text, 'timezone')}: "
            "desk.timezone: 'Mars/Olympus' is not a time zone") in result.stderr


def test_the_shipped_profile_is_valid():
    profile = yaml.safe_load(GOOD)
    assert set(profile) == {"name", "answers", "orders", "complaints", "desk", "leads", "meetings", "review",
                            "retention", "reports"}
    assert load(ROOT / "company.yml")["desk"]["queue_timeout_minutes"] == 120
