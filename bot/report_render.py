"""How a report (crm/reports.py) reads, in the reader's language: the summary text of /report, the
CSV of the command line (one row per figure), the charts as PNG (matplotlib, Agg) and the monthly
PDF (matplotlib's own PDF backend: text pages, then the charts).

Charts are drawn for a phone: large type, one idea each, and only when they have something to
show (an empty month has no chart). Matplotlib is used without pyplot, through Figure objects, so
a report drawn in a worker thread shares no global figure state; a lock keeps two reports drawn
at once (a /report and the monthly PDF) from interleaving in the font cache.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from babel.dates import format_date
from babel.numbers import format_decimal
from matplotlib import rcParams
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure as Canvas
from matplotlib.ticker import MaxNLocator

from crm.i18n import Texts, format_money, format_percent, normalise_language
from crm.periods import Period, period_name
from crm.reports import Figure, Report, attribution_days

TEXTS = Texts("report")
LABELS = Texts("report.figure")
SECTIONS = Texts("report.section")
CHARTS = Texts("report.chart")
DETAILS = {  # the breakdowns whose members are words of the business, not names
    "desk.handoffs_by_reason": Texts("handoffs.reason"),
    "complaints.by_category": Texts("complaints.category"),
    "complaints.by_severity": Texts("complaints.severity"),
}
COLOURS = ("#1f5f99", "#e07b28", "#3a9a5b", "#b8423a", "#7a5aa6")
rcParams["pdf.fonttype"] = 42  # TrueType in the PDF: its text can be searched and copied
_drawing = threading.Lock()


# --- words and numbers -------------------------------------------------------------------------


def duration(minutes: float, language: str) -> str:
    """"45 min", "3 h 20", "2 j 4 h" / "2 d 4 h"."""
    minutes = round(minutes)
    if minutes < 60:
        return TEXTS.t("minutes", language, n=minutes)
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return TEXTS.t("hours", language, h=hours, m=f"{rest:02d}")
    days, hours = divmod(hours, 24)
    return TEXTS.t("days", language, d=days, h=hours)


def value_text(figure: Figure, value: float | None, language: str, currency: str) -> str:
    if value is None:
        return TEXTS.t("no_data", language)
    code = normalise_language(language)
    unit = figure.unit
    if unit == "share":
        return format_percent(value, code)
    if unit == "minutes":
        return duration(value, code)
    if unit == "money":
        return format_money(Decimal(str(round(value, 2))), currency, code)
    if unit in ("score", "points"):
        return format_decimal(round(value, 1), format="#,##0.0", locale=code)
    return format_decimal(round(value), locale=code)


def change_text(figure: Figure, language: str) -> str:
    """The move since the previous period: ▲/▼ in % (in points for a rate), "=" when equal,
    nothing when either side has no data."""
    now, before = figure.value, figure.previous
    if now is None or before is None:
        return ""
    if abs(now - before) < 1e-9:
        return "="
    arrow = "▲" if now > before else "▼"
    code = normalise_language(language)
    if figure.unit == "share":
        return f"{arrow} {TEXTS.t('points', code, n=format_decimal(round(abs(now - before) * 100, 1), locale=code))}"
    if before == 0:
        return f"{arrow} {TEXTS.t('from_zero', code)}"
    return f"{arrow} {format_percent(abs(now - before) / abs(before), code)}"


def label(figure: Figure, language: str) -> str:
    detail = figure.detail
    if figure.key in DETAILS and detail in DETAILS[figure.key]:
        detail = DETAILS[figure.key].t(detail, language)
    return LABELS.t(figure.key, language, detail=detail, days=attribution_days())


def lines(report: Report, language: str) -> list[tuple[str, str, str, str]]:
    """(section heading or "", label, value, change) for every figure, in report order."""
    out, seen = [], set()
    currency = report.current.currency
    for figure in report.figures:
        heading = ""
        if figure.section not in seen:
            seen.add(figure.section)
            heading = SECTIONS.t(figure.section, language)
        out.append((heading, label(figure, language), value_text(figure, figure.value, language, currency),
                    change_text(figure, language)))
    return out


def summary_text(report: Report, language: str) -> str:
    """The reply to /report: a title, then each section's figures with their move."""
    parts = [TEXTS.t("title", language, period=period_name(report.period, language),
                     previous=period_name(report.previous, language))]
    for heading, name, value, move in lines(report, language):
        if heading:
            parts.append(f"\n{heading}")
        parts.append(TEXTS.t("line", language, label=name, value=value) + (f"  {move}" if move else ""))
    if not report.figures:
        parts.append(TEXTS.t("nothing", language))
    return "\n".join(parts)


def csv_text(report: Report) -> str:
    """One row per figure: name, value, previous value, unit (money in the orders' currency)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "value", "previous", "unit"])
    for figure in report.figures:
        unit = report.current.currency if figure.unit == "money" else figure.unit
        writer.writerow([figure.name, _number(figure.value), _number(figure.previous), unit])
    return buffer.getvalue()


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}".rstrip("0")


# --- charts ------------------------------------------------------------------------------------


def _style(ax, title: str, counts: str = "y") -> None:
    """Large type for a phone; counts (on the `counts` axis) on whole-number ticks."""
    (ax.yaxis if counts == "y" else ax.xaxis).set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis=counts, alpha=0.3)
    ax.set_title(title, fontsize=20, pad=16, loc="left", fontweight="bold")
    ax.tick_params(labelsize=14)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_axisbelow(True)


def _conversations(ax, report: Report, language: str) -> None:
    days = report.current.per_day
    x = list(range(len(days)))
    ax.bar(x, [c for _, c, _ in days], color=COLOURS[0], label=CHARTS.t("conversations", language))
    ax.bar(x, [h for _, _, h in days], color=COLOURS[1], width=0.5, label=CHARTS.t("handoffs", language))
    step = max(1, -(-len(days) // 6))  # six dates at most under the bars
    ax.set_xticks(x[::step], [format_date(d, "d MMM", locale=normalise_language(language)) for d, _, _ in days][::step])
    ax.legend(fontsize=14, frameon=False)
    _style(ax, CHARTS.t("conversations_title", language))


def _satisfaction(ax, report: Report, language: str) -> None:
    marks = report.current.satisfaction
    ax.bar([str(s) + " ★" for s in range(1, 6)], [marks.get(s, 0) for s in range(1, 6)],
           color=[COLOURS[3], COLOURS[3], COLOURS[1], COLOURS[2], COLOURS[2]])
    ax.set_ylabel(CHARTS.t("ratings", language), fontsize=14)
    _style(ax, CHARTS.t("satisfaction_title", language))


def _orders(ax, report: Report, language: str) -> None:
    weeks = report.current.per_week
    code = normalise_language(language)
    names = [TEXTS.t("week_of", code, day=format_date(monday, "d MMM", locale=code)) for monday, _, _ in weeks]
    ax.bar(names, [n for _, n, _ in weeks], color=COLOURS[0], label=CHARTS.t("orders", language))
    ax.set_ylabel(CHARTS.t("orders", language), fontsize=14)
    revenue = ax.twinx()
    revenue.plot(names, [float(total) for _, _, total in weeks], color=COLOURS[1], marker="o", linewidth=3)
    revenue.set_ylabel(CHARTS.t("revenue", language, currency=report.current.currency), fontsize=14,
                       color=COLOURS[1])
    revenue.tick_params(labelsize=14, colors=COLOURS[1])
    revenue.set_ylim(bottom=0)
    ax.tick_params(axis="x", labelrotation=30)
    _style(ax, CHARTS.t("orders_title", language))


def _funnel(ax, report: Report, language: str) -> None:
    stages = ("leads.new", "leads.qualified", "leads.hot", "leads.won")
    counts = [report.figure(key).value or 0 for key in stages]
    names = [LABELS.t(key, language) for key in stages]
    ax.barh(names[::-1], counts[::-1], color=COLOURS[2])
    for y, count in enumerate(counts[::-1]):
        ax.text(count, y, f" {int(count)}", va="center", fontsize=16)
    _style(ax, CHARTS.t("funnel_title", language), counts="x")


def _complaints(ax, report: Report, language: str) -> None:
    rows = [(label(f, language), f.value or 0) for f in report.figures if f.key == "complaints.by_category"]
    ax.barh([n for n, _ in rows][::-1], [v for _, v in rows][::-1], color=COLOURS[3])
    _style(ax, CHARTS.t("complaints_title", language), counts="x")


def _has(report: Report, key: str) -> bool:
    return any(f.key == key and f.value for f in report.figures)


# (name, the section that holds its data, whether there is anything to draw, how it is drawn)
CHART_KINDS: list[tuple[str, str, Callable[[Report], bool], Callable]] = [
    ("conversations", "assistant", lambda r: any(c or h for _, c, h in r.current.per_day), _conversations),
    ("satisfaction", "desk", lambda r: any(r.current.satisfaction.values()), _satisfaction),
    ("orders", "orders", lambda r: any(n for _, n, _ in r.current.per_week), _orders),
    ("funnel", "leads", lambda r: _has(r, "leads.new") or _has(r, "leads.qualified") or _has(r, "leads.won"), _funnel),
    ("complaints", "complaints", lambda r: _has(r, "complaints.by_category"), _complaints),
]


def chart_kinds(report: Report) -> list[tuple[str, Callable]]:
    return [(name, draw) for name, section, has_data, draw in CHART_KINDS
            if section in report.sections and has_data(report)]


def charts(report: Report, language: str) -> list[tuple[str, bytes]]:
    """The report's charts as PNG files (name, bytes), 1200 × 900 pixels, empty ones left out."""
    out = []
    with _drawing:
        for name, draw in chart_kinds(report):
            figure = Canvas(figsize=(8, 6), dpi=150, layout="constrained")
            draw(figure.add_subplot(), report, language)
            buffer = io.BytesIO()
            FigureCanvasAgg(figure).print_png(buffer)
            out.append((name, buffer.getvalue()))
    return out


# --- the PDF -----------------------------------------------------------------------------------

A4 = (8.27, 11.69)
LINES_PER_PAGE = 58


def pdf_bytes(report: Report, language: str) -> bytes:
    """The monthly report: the figures (one or two pages), then the charts, three to a page."""
    buffer = io.BytesIO()
    with _drawing, PdfPages(buffer, metadata={"Title": _title(report, language), "Creator": "relations-clients"}) as pdf:
        for page in pages(report, language):
            pdf.savefig(page)
    return buffer.getvalue()


def pages(report: Report, language: str) -> Iterator[Canvas]:
    """The PDF's pages as A4 figures."""
    rows = lines(report, language)
    chunks: list[list] = [[]]
    room = LINES_PER_PAGE - 4  # the first page has the title
    for row in rows:  # a heading takes two lines, and never ends a page
        need = 3 if row[0] else 1
        if sum(2 if r[0] else 1 for r in chunks[-1]) + need > room:
            chunks.append([])
            room = LINES_PER_PAGE
        chunks[-1].append(row)
    for number, chunk in enumerate(chunks):
        figure = Canvas(figsize=A4)
        y = 0.95
        if number == 0:
            figure.text(0.07, y, _title(report, language), fontsize=18, fontweight="bold")
            figure.text(0.07, y - 0.03, TEXTS.t("generated", language, previous=period_name(report.previous, language)),
                        fontsize=10, color="#555555")
            y -= 0.07
            if not rows:
                figure.text(0.07, y, TEXTS.t("nothing", language), fontsize=12)
        for heading, name, value, move in chunk:
            if heading:
                y -= 0.012
                figure.text(0.07, y, heading, fontsize=13, fontweight="bold", color=COLOURS[0])
                y -= 0.02
            # A client's text (the misunderstood ones) is printed as written: "$" is no formula.
            figure.text(0.09, y, _fit(name, 62), fontsize=10, parse_math=False)
            figure.text(0.78, y, value, fontsize=10, ha="right", parse_math=False)
            figure.text(0.81, y, move, fontsize=10, color="#555555")
            y -= 0.0155
        yield figure
    kinds = chart_kinds(report)
    for start in range(0, len(kinds), 3):
        figure = Canvas(figsize=A4, layout="constrained")
        axes = figure.subplots(3, 1)
        for ax, (_, draw) in zip(axes, kinds[start:start + 3]):
            draw(ax, report, language)
        for ax in axes[len(kinds[start:start + 3]):]:
            ax.set_visible(False)
        yield figure


def _title(report: Report, language: str) -> str:
    return TEXTS.t("pdf_title", language, period=period_name(report.period, language))


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def pdf_name(period: Period, language: str) -> str:
    return TEXTS.t("file_name", language, period=period.month or f"{period.first}_{period.last}") + ".pdf"
