"""How a report reads (bot/report_render.py): durations, moves and money in each language, the CSV
a spreadsheet opens, charts only when they show something, and a PDF of 2 to 4 pages whose text
holds the figures; an empty month says "no data" with no chart and no crash."""

from __future__ import annotations

import csv
import io
from datetime import date

import pypdf
import pytest

from bot import report_render
from crm import periods, reports
from crm.db import unit_of_work
from tests.test_reports import NOVEMBER, PARIS, seed


def plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.mark.parametrize("minutes,fr,en", [
    (0.4, "0 min", "0 min"), (45, "45 min", "45 min"), (200, "3 h 20", "3 h 20"),
    (47 * 60 + 59, "47 h 59", "47 h 59"), (2 * 1440 + 4 * 60 + 10, "2 j 4 h", "2 d 4 h"),
])
def test_durations_read_as_people_say_them(minutes, fr, en):
    assert report_render.duration(minutes, "fr") == fr and report_render.duration(minutes, "en") == en


@pytest.mark.parametrize("key,value,previous,fr,en", [
    ("clients.active", 12, 10, "▲ 20 %", "▲ 20%"),
    ("clients.active", 5, 10, "▼ 50 %", "▼ 50%"),
    ("clients.active", 3, 0, "▲ (0 avant)", "▲ (from 0)"),
    ("clients.active", 0, 0, "=", "="),
    ("assistant.automation_rate", 0.62, 0.5, "▲ 12 pts", "▲ 12 pts"),
    ("desk.take_median", None, 10, "", ""),
    ("desk.take_median", 10, None, "", ""),
])
def test_each_move_is_an_arrow_and_a_percentage_or_points_for_a_rate(key, value, previous, fr, en):
    figure = reports.Figure(key, value, previous)
    assert plain(report_render.change_text(figure, "fr")) == fr
    assert plain(report_render.change_text(figure, "en")) == en


@pytest.fixture
def november(sqlite_engine):
    with unit_of_work(sqlite_engine) as s:
        seed(s)
    with unit_of_work(sqlite_engine) as s:
        return reports.build_report(s, NOVEMBER)


def test_the_csv_has_one_row_per_figure_with_its_previous_value_and_unit(november):
    rows = list(csv.reader(io.StringIO(report_render.csv_text(november))))
    assert rows[0] == ["name", "value", "previous", "unit"]
    assert len(rows) == len(november.figures) + 1
    by_name = {row[0]: row[1:] for row in rows[1:]}
    assert by_name["orders.revenue"] == ["130", "50", "EUR"]
    assert by_name["desk.take_median"] == ["10", "30", "minutes"]
    assert by_name["desk.satisfaction_by_manager:Bob"] == ["3", "", "score"]
    assert by_name["assistant.automation_rate"] == ["0.3333", "0", "share"]
    assert by_name["complaints.by_category:product"] == ["1", "0", "complaints"]


def test_the_pdf_has_the_figures_then_the_charts_in_four_pages_at_most(november):
    document = pypdf.PdfReader(io.BytesIO(report_render.pdf_bytes(november, "fr")))
    assert 2 <= len(document.pages) <= 4
    text = plain("\n".join(page.extract_text() for page in document.pages))
    assert "Rapport mensuel : novembre 2026" in text
    assert "Clients actifs 4 ▲ 300 %" in text and "Chiffre d'affaires 130,00 € ▲ 160 %" in text
    assert "Abonnés en fin de période 2 ▼ 33 %" in text  # the last figure: nothing cut off
    assert "Réclamations par catégorie" in text and "Commandes par semaine" in text  # the charts' titles
    assert [name for name, _ in report_render.charts(november, "fr")] == [
        "conversations", "satisfaction", "orders", "funnel", "complaints"]


def test_a_client_s_text_with_dollars_and_backslashes_is_printed_as_written(sqlite_engine):
    from crm.models import Client, ConversationMessage
    from tests.test_reports import utc

    odd = r"le prix en $\oops$ et {braces} ?"  # a formula to matplotlib, which knows no \oops
    with unit_of_work(sqlite_engine) as s:
        client = Client(telegram_id=77, first_name="Eve", language="fr")
        s.add(client)
        s.flush()
        s.add(ConversationMessage(client_id=client.id, direction="in", text=odd, understood=False,
                                  created_at=utc(2026, 11, 5, 10, 0)))
    with unit_of_work(sqlite_engine) as s:
        report = reports.build_report(s, NOVEMBER, ("assistant",))
    assert report.figures[-1].detail == odd
    text = plain("\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(report_render.pdf_bytes(report, "fr"))).pages))
    assert "« le prix en $\\oops$ et {braces} ? »" in text
    assert "« le prix en $\\oops$ et {braces} ? »" in plain(report_render.summary_text(report, "fr"))


def test_an_empty_month_says_no_data_and_draws_no_chart(sqlite_engine):
    with unit_of_work(sqlite_engine) as s:
        report = reports.build_report(s, periods.month_period(date(2026, 2, 1), PARIS))
    text = plain(report_render.summary_text(report, "en"))
    assert "Automation rate (no human): no data" in text and "Active clients: 0  =" in text
    figures = text.split("\n", 2)[2]  # after the title
    assert "Average basket: no data" in figures and "▲" not in figures and "▼" not in figures
    assert report_render.charts(report, "en") == []
    document = pypdf.PdfReader(io.BytesIO(report_render.pdf_bytes(report, "en")))
    assert len(document.pages) <= 2 and "Monthly report: February 2026" in document.pages[0].extract_text()


def test_a_range_is_named_by_its_days(sqlite_engine):
    period = periods.day_range(date(2027, 3, 27), date(2027, 3, 28), PARIS)
    assert periods.period_name(period, "fr") == "du 27 mars 2027 au 28 mars 2027"
    assert periods.period_name(period, "en") == "27 Mar 2027 to 28 Mar 2027"
    assert report_render.pdf_name(period, "en") == "report-2027-03-27_2027-03-28.pdf"
    assert report_render.pdf_name(NOVEMBER, "fr") == "rapport-2026-11.pdf"


def test_the_command_line_writes_text_csv_and_pdf_and_refuses_what_it_cannot_read(tmp_path):
    from crm.db import make_engine
    from crm.migrate import upgrade
    from tests.test_settings_cli import cli

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as s:
        seed(s)
    engine.dispose()
    text = cli("report", "--month", "2026-11", "--language", "en", "--part", "desk", database_url=url)
    assert text.returncode == 0, text.stderr
    assert plain(text.stdout).startswith("📊 Report: November 2026") and "Requests nobody took: 1" in text.stdout
    assert "Active clients" not in text.stdout
    table = cli("report", "--month", "2026-11", "--format", "csv", "-o", str(tmp_path / "r.csv"), database_url=url)
    assert table.returncode == 0 and "written to" in table.stdout
    rows = list(csv.reader((tmp_path / "r.csv").open(encoding="utf-8")))
    assert ["clients.active", "4", "1", "clients"] in rows
    pdf = cli("report", "--month", "2026-11", "--format", "pdf", "-o", str(tmp_path / "r.pdf"), database_url=url)
    assert pdf.returncode == 0 and 2 <= len(pypdf.PdfReader(tmp_path / "r.pdf").pages) <= 4
    for args, error in [(("--month", "2026-13"), "I can't read the period \"2026-13\""),
                        (("--format", "pdf"), "a PDF needs a file"),
                        (("--from", "2026-11-01"), "--from and --to go together"),
                        (("--month", "2026-11", "--from", "2026-11-01", "--to", "2026-11-02"), "not both")]:
        refused = cli("report", *args, database_url=url)
        assert refused.returncode != 0 and error in refused.stderr, refused.stderr


def test_the_local_chat_saves_a_report_s_charts_and_pdf_as_sent(tmp_path, monkeypatch, november):
    import bot.console
    from bot.emulator import Sent

    monkeypatch.setattr(bot.console, "private_var", lambda: tmp_path)
    [(name, png)] = report_render.charts(reports.Report(november.period, november.previous, ("orders",),
                                                         november.section("orders"), november.current), "fr")
    chart = Sent("sendPhoto", 1, 1, photo="<upload orders.png>", params={"photo": "<upload orders.png>",
                                                                          "photo_bytes": png})
    assert bot.console.save_document(chart, "photo").read_bytes() == png and name == "orders"
    pdf = report_render.pdf_bytes(november, "fr")
    document = Sent("sendDocument", 1, 2, params={"document": "<upload rapport-2026-11.pdf>", "document_bytes": pdf})
    assert bot.console.save_document(document).read_bytes() == pdf, "a PDF kept byte for byte"
