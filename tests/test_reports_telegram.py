"""/report in Telegram and the monthly PDF (the Bot API emulator, a stub Rasa, the CRM of
tests/test_reports.py): a manager gets the summary and the charts as an album, a marketer the
marketing part only, a client nothing; a bad period is explained; the admins' monthly PDF is
sent once, in their language, whatever restarts follow."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timezone
from types import SimpleNamespace

import pypdf
import pytest
from sqlalchemy import select

from bot import reports as bot_reports
from bot.emulator import User
from crm.models import Notification
from crm.staff import add_staff
from tests.harness import BotHarness, make_settings
from tests.test_desk import first
from tests.test_reports import seed
from tests.test_telegram_edge import crm, database_url, stub  # noqa: F401  (fixtures)

ALICE = User(id=501, first_name="Alice", language_code="fr")  # a manager of the seeded CRM
ADA = User(id=900, first_name="Ada", language_code="en")
HUGO = User(id=901, first_name="Hugo", language_code="fr")
CLIENT = User(id=902, first_name="Léa", language_code="fr")
PNG = b"\x89PNG\r\n\x1a\n"
NINE = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)  # 9:00 in Paris on Tuesday 1 December


def plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.fixture
async def bot(database_url, stub):  # noqa: F811
    async with BotHarness(make_settings(database_url, stub.url)) as harness:
        with crm(harness) as s:
            seed(s)
            add_staff(s, ADA.id, "admin", "Ada").language = "en"
            add_staff(s, HUGO.id, "marketer", "Hugo")
        yield harness


def photos(bot, user) -> list:
    return [m for m in bot.emulator.messages_to(user.id) if m.method == "sendPhoto"]


async def test_a_manager_gets_the_figures_then_the_charts_as_one_album(bot, stub):
    working, summary, *charts = await bot.say(ALICE, "/report 2026-11", expect=7)
    assert working.text == "⏳ Je prépare le rapport (novembre 2026)…"
    text = plain(summary.text)
    assert text.startswith("📊 Rapport : novembre 2026\nComparé à : octobre 2026")
    for line in ("Clients actifs : 4  ▲ 300 %", "Taux d'automatisation (sans humain) : 33 %  ▲ 33,3 pts",
                 "Non compris : « où est ma commande [order] » : 2  ▲ (0 avant)",
                 "Délai de prise en charge, médiane (heures d'ouverture) : 10 min  ▼ 67 %",
                 "Durée de traitement, médiane : 1 h 15  ▲ 150 %", "  Satisfaction, Bob : 3,0",
                 "Chiffre d'affaires : 130,00 €  ▲ 160 %", "Rendez-vous déplacés : 1  ▲ (0 avant)",
                 "Commandes des destinataires sous 7 jours : 1  ▲ (0 avant)"):
        assert line in text.split("\n"), line
    assert [c.method for c in charts] == ["sendPhoto"] * 5
    assert all(c.params["photo_bytes"].startswith(PNG) for c in charts)
    assert [method for method, _ in bot.emulator.calls if method == "sendMediaGroup"] == ["sendMediaGroup"]
    assert stub.received == [], "a report never reaches Rasa"


async def test_an_english_admin_reads_it_in_english(bot):
    _, summary, *_ = await bot.say(ADA, "/report desk 2026-11", expect=3)
    text = plain(summary.text)
    assert text.startswith("📊 Report: November 2026\nCompared with: October 2026")
    assert "Desk (managers)" in text and "Clients" not in text.split("\n")
    assert "Time to take, 90% within: 20 min  ▼ 33%" in text.split("\n")
    assert len(photos(bot, ADA)) == 1, "the desk part has one chart: the satisfaction"


async def test_a_marketer_gets_the_marketing_part_and_is_refused_the_desk(bot):
    _, summary, chart = await bot.say(HUGO, "/report 2026-11", expect=3)
    headings = [line for line in summary.text.split("\n") if line in (
        "Clients", "Assistant", "Accueil (managers)", "Réclamations", "Commandes passées avec l'assistant",
        "Prospects et rendez-vous", "Diffusions")]
    assert headings == ["Clients", "Commandes passées avec l'assistant", "Diffusions"]
    assert chart.method == "sendPhoto" and chart.params["photo_bytes"].startswith(PNG)  # orders per week
    [refused] = await bot.say(HUGO, "/report accueil 2026-11")
    assert refused.text == ("Cette partie du rapport est réservée aux managers et aux administrateurs. "
                            "Vous pouvez voir : clients, commandes, diffusions.")
    [refused] = await bot.say(HUGO, "/report reclamations")
    assert refused.text.startswith("Cette partie du rapport est réservée")


async def test_a_client_is_refused_and_sees_no_figure(bot, stub):
    [refused] = await bot.say(CLIENT, "/report 2026-11")
    assert "Clients actifs" not in refused.text and "réservée" in refused.text
    await asyncio.sleep(0.5)
    assert len(bot.emulator.messages_to(CLIENT.id)) == 1 and not photos(bot, CLIENT)
    assert stub.received == []


@pytest.mark.parametrize("words,answer", [
    ("2026-13", "Je ne comprends pas la période « 2026-13 »."),
    ("2099-01", "La période « 2099-01 » n'a pas encore commencé."),
    ("2026-11-15 2026-11-01", "La fin (2026-11-01) est avant le début (2026-11-15)."),
    ("n" * 3000, "Je ne comprends pas la période « nnnnnnnnn"),
    ("aide", "Rapport : /report pour ce mois-ci"),
])
async def test_a_period_it_cannot_read_is_explained_and_nothing_is_built(bot, words, answer):
    [reply] = await bot.say(ALICE, f"/report {words}")
    assert reply.text.startswith(answer) and len(reply.text) < 400
    await asyncio.sleep(0.3)
    assert not photos(bot, ALICE)


async def test_the_monthly_pdf_reaches_each_admin_once_across_a_restart(database_url, stub):  # noqa: F811
    settings = make_settings(database_url, stub.url)
    async with BotHarness(settings) as bot:
        with crm(bot) as s:
            seed(s)
            add_staff(s, ADA.id, "admin", "Ada").language = "en"
        job = SimpleNamespace(assistant=bot.application.assistant)
        # Tuesday 1 December 2026, 8:59 in Paris: not yet; 9:00: last month's report is due.
        await bot_reports.monthly_report(job, datetime(2026, 12, 1, 7, 59, tzinfo=timezone.utc))
        with crm(bot) as s:
            assert s.scalar(select(Notification.id)) is None
        await bot_reports.monthly_report(job, NINE)
        await bot_reports.monthly_report(job, NINE)  # a second bot process at the same instant
        sent = await first(bot, ADA, "📊 Monthly report for November 2026", timeout=60)
        assert sent.method == "sendDocument" and sent.params["document"] == "<upload report-2026-11.pdf>"
        document = pypdf.PdfReader(io.BytesIO(sent.params["document_bytes"]))
        assert 2 <= len(document.pages) <= 4
        text = plain("\n".join(page.extract_text() for page in document.pages))
        assert "Monthly report: November 2026" in text and "Compared with: October 2026" in text
        assert "Active clients 4 ▲ 300%" in text and "Revenue €130.00 ▲ 160%" in text
        assert "Satisfaction, Alice 5.0 ▲ 25%" in text
        assert not bot.emulator.messages_to(ALICE.id), "managers do not get the monthly PDF"
    async with BotHarness(settings) as restarted:  # the bot restarts the same morning
        await bot_reports.monthly_report(SimpleNamespace(assistant=restarted.application.assistant),
                                         datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc))
        await asyncio.sleep(5)  # two rounds of the outbox
        assert not restarted.emulator.messages_to(ADA.id)
        with crm(restarted) as s:
            rows = s.execute(select(Notification.chat_id, Notification.status)
                             .where(Notification.attachment == "report:2026-11")).all()
    assert rows == [(ADA.id, "sent")]
