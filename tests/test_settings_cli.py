"""Settings validation and the `python -m bot` command line, as an operator would use them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.settings import load_settings
from crm.settings import ROOT, SettingError

SETTING_NAMES = ["TELEGRAM_BOT_TOKEN", "TELEGRAM_BASE_URL", "DATABASE_URL", "RASA_URL", "RASA_PORT",
                 "ACTION_PORT", "ACTION_SERVER_URL", "RASA_TIMEOUT", "WEBHOOK_URL", "WEBHOOK_SECRET",
                 "WEBHOOK_PORT", "STAFF_CHAT_ID", "STAFF_CHAT_LANGUAGE", "BROADCAST_RATE", "TELEGRAM_RATE",
                 "BROADCAST_SENDER", "ACTION_SERVER_TOKEN", "RASA_HOST"]


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("RASA_TOKEN", "a-test-token-of-24-chars")
    monkeypatch.setenv("ACTION_SERVER_TOKEN", "an-action-token-of-24-ch")
    return monkeypatch


def test_defaults_need_nothing(env):
    settings = load_settings()
    assert settings.local_chat and settings.telegram_base_url == "https://api.telegram.org/bot"
    assert settings.rasa_url == "http://127.0.0.1:5005" and settings.webhook_url is None


@pytest.mark.parametrize("name,value", [
    ("TELEGRAM_BOT_TOKEN", "not-a-token"),
    ("TELEGRAM_BASE_URL", "ftp://example.org"),
    ("DATABASE_URL", "mysql://localhost/crm"),
    ("RASA_PORT", "70000"),
    ("ACTION_PORT", "abc"),
    ("RASA_TIMEOUT", "-1"),
    ("WEBHOOK_URL", "http://bot.example.org/hook"),
    ("WEBHOOK_SECRET", "with spaces!"),
    ("WEBHOOK_SECRET", "short_secret"),
    ("RASA_TOKEN", "guessable"),
    ("ACTION_SERVER_TOKEN", "guessable"),
    ("STAFF_CHAT_ID", "12345"),
    ("STAFF_CHAT_LANGUAGE", "de"),
    ("BROADCAST_RATE", "0"),
    ("BROADCAST_RATE", "fast"),
    ("TELEGRAM_RATE", "0"),
    ("REDIS_URL", "127.0.0.1:6379"),
])
def test_a_wrong_value_is_named(env, name, value):
    env.setenv(name, value)
    if name == "WEBHOOK_SECRET":
        env.setenv("WEBHOOK_URL", "https://bot.example.org/hook")
    if name == "STAFF_CHAT_LANGUAGE":
        env.setenv("STAFF_CHAT_ID", "-1001234567890")
    with pytest.raises(SettingError) as err:
        load_settings()
    assert name in str(err.value)


def test_webhook_needs_its_secret(env):
    env.setenv("WEBHOOK_URL", "https://bot.example.org/hook")
    with pytest.raises(SettingError, match="WEBHOOK_SECRET"):
        load_settings()
    env.setenv("WEBHOOK_SECRET", "s3cret_token_of_24_chars")
    assert load_settings().webhook_secret == "s3cret_token_of_24_chars"


def test_a_plain_http_webhook_only_with_a_bot_api_server_of_ones_own(env):
    """Telegram calls https only; a self-hosted Bot API server (or the local emulator) may call http."""
    env.setenv("WEBHOOK_URL", "http://127.0.0.1:8080/telegram")
    env.setenv("WEBHOOK_SECRET", "s3cret_token_of_24_chars")
    with pytest.raises(SettingError, match="WEBHOOK_URL must be an https"):
        load_settings()
    env.setenv("TELEGRAM_BASE_URL", "http://127.0.0.1:8081/bot")
    assert load_settings().webhook_url == "http://127.0.0.1:8080/telegram"


def cli(*args, database_url: str, extra_env: dict | None = None):
    environment = {**os.environ, "DATABASE_URL": database_url, "RASA_TOKEN": "a-test-token-of-24-chars",
                   "ACTION_SERVER_TOKEN": "an-action-token-of-24-ch", **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_cli_import_catalog_accepts_good_files_and_rejects_bad_ones_whole(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    good = tmp_path / "good.csv"
    good.write_text("sku,name,category,description,price,stock\nNEW-1,Plastifieuse A3,Fournitures,x,89.00,4\n")
    result = cli("import-catalog", str(good), database_url=url)
    assert result.returncode == 0 and "1 product(s) created" in result.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,category,description,price,stock\nNEW-2,Ok,Cat,x,1.00,1\nNEW-3,Bad,Cat,x,abc,1\n")
    result = cli("import-catalog", str(bad), database_url=url)
    assert result.returncode == 1
    assert "rejected, nothing was imported" in result.stderr and "line 3: price 'abc'" in result.stderr
    missing = cli("import-catalog", str(tmp_path / "nope.csv"), database_url=url)
    assert missing.returncode != 0 and "File not found" in missing.stderr


def test_a_company_starts_with_its_own_catalogue_and_replaces_it(tmp_path):
    from sqlalchemy import select

    from crm.db import engine_for, unit_of_work
    from crm.models import Product

    url = f"sqlite:///{tmp_path / 'own.db'}"
    first = tmp_path / "first.csv"
    first.write_text("sku,name,category,description,price,stock\nA-1,Agrafeuse,Petit matériel,x,20,4\n"
                     "A-2,Perforatrice,Petit matériel,x,18,3\n")
    result = cli("import-catalog", str(first), database_url=url)
    assert result.returncode == 0 and "2 product(s) created" in result.stdout
    assert "demo" not in result.stdout
    second = tmp_path / "second.csv"
    second.write_text("sku,name,category,description,price,stock\nA-1,Agrafeuse,Petit matériel,x,21,4\n")
    result = cli("import-catalog", str(second), "--replace", database_url=url)
    assert result.returncode == 0, result.stderr
    assert "0 product(s) created, 1 updated, 1 no longer offered" in result.stdout
    with unit_of_work(engine_for(url)) as s:
        products = {p.sku: p.active for p in s.scalars(select(Product))}
    assert products == {"A-1": True, "A-2": False}, "no demo product, and the missing one withdrawn, not deleted"
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert cli("migrate", database_url=empty, extra_env={"DEMO_DATA": "off"}).returncode == 0
    with unit_of_work(engine_for(empty)) as s:
        assert s.scalars(select(Product)).first() is None


def test_cli_staff_commands(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli("staff", "add", "4242", "--role", "manager", "--name", "Claire", database_url=url).returncode == 0
    listing = cli("staff", "list", database_url=url)
    assert "4242\tmanager\tactive\tClaire" in listing.stdout
    from crm.clients import TelegramProfile, register_client
    from crm.db import engine_for, unit_of_work
    from crm.handoffs import open_handoff, take_handoff
    from crm.models import Handoff
    from crm.staff import active_staff

    with unit_of_work(engine_for(url)) as s:  # Claire holds a client's conversation
        client, _ = register_client(s, TelegramProfile(777, "Alice"))
        handoff_id = take_handoff(s, open_handoff(s, client, "request")[0].id, active_staff(s, 4242)).id
    removed = cli("staff", "remove", "4242", database_url=url)
    assert removed.returncode == 0
    assert removed.stdout.strip() == "Claire (4242) no longer has staff access. 1 conversation(s) they held went back " \
                                     "to the queue."
    with unit_of_work(engine_for(url)) as s:
        assert s.get(Handoff, handoff_id).status == "queued"
    again = cli("staff", "remove", "4242", database_url=url)
    assert again.returncode != 0 and "no active staff member" in again.stderr
    wrong = cli("staff", "add", "1", "--role", "boss", "--name", "X", database_url=url)
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr


def test_cli_stops_on_a_wrong_setting(tmp_path):
    result = cli("staff", "list", database_url="mysql://nope")
    assert result.returncode != 0 and "Configuration error: DATABASE_URL" in result.stderr


def test_cli_orders_complaints_and_promotions(tmp_path):
    from crm.clients import TelegramProfile, register_client
    from crm.complaints import open_complaint
    from crm.db import engine_for, unit_of_work
    from crm.models import Notification, Product
    from crm.orders import place_order
    from sqlalchemy import select

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli("migrate", database_url=url).returncode == 0
    with unit_of_work(engine_for(url)) as s:
        client, _ = register_client(s, TelegramProfile(5151, "Zoé"))
        mouse = s.scalar(select(Product).where(Product.sku == "PER-LOG-MXM3"))
        number = place_order(s, client, mouse.id, 1, "3 place Bellecour, Lyon").number
        ticket = open_complaint(s, client, "delivery", "Colis en retard de deux semaines").number
    shipped = cli("order", number, "shipped", database_url=url)
    assert shipped.returncode == 0 and f"{number} is now shipped" in shipped.stdout
    assert cli("order", "CMD-999999", "shipped", database_url=url).returncode == 1
    resolved = cli("resolve-complaint", ticket, "Nouveau colis expédié.", database_url=url)
    assert resolved.returncode == 0
    assert cli("resolve-complaint", ticket, "encore", database_url=url).stderr.startswith("Error: complaint")
    added = cli("promotion", "add", "--title-fr", "Souris", "--discount", "20", "--start", "2026-01-01",
                "--end", "2099-12-31", "--sku", "PER-LOG-MXM3", database_url=url)
    assert added.returncode == 0, added.stderr
    assert "-20.00%" in cli("promotion", "list", database_url=url).stdout
    bad = cli("promotion", "add", "--title-fr", "X", "--discount", "dix", "--start", "2026-01-01",
              "--end", "2026-02-01", database_url=url)
    assert bad.returncode != 0 and "discount must be a number" in bad.stderr
    with unit_of_work(engine_for(url)) as s:
        texts = [n.text for n in s.scalars(select(Notification).where(Notification.chat_id == 5151))]
    assert texts[0] == f"Votre commande {number} est maintenant expédiée."
    assert texts[1].startswith(f"Votre réclamation {ticket} est résolue : Nouveau colis expédié.")


def test_cli_client_vip_and_account_manager(tmp_path):
    from crm.clients import TelegramProfile, register_client
    from crm.db import engine_for, unit_of_work

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli("staff", "add", "4242", "--role", "manager", "--name", "Claire Dubois", database_url=url).returncode == 0
    assert cli("staff", "add", "4343", "--role", "marketer", "--name", "Hugo", database_url=url).returncode == 0
    with unit_of_work(engine_for(url)) as s:
        register_client(s, TelegramProfile(5151, "Zoé"))
    assert "Zoé is now VIP." in cli("client", "vip", "5151", "on", database_url=url).stdout
    assert cli("client", "assign", "5151", "4242", database_url=url).returncode == 0
    card = cli("client", "show", "5151", database_url=url).stdout
    assert "⭐ Client VIP" in card and "Conseiller attitré : Claire Dubois" in card
    assert "Account manager: Claire Dubois" in cli("client", "show", "5151", "--language", "en", database_url=url).stdout
    marketer = cli("client", "assign", "5151", "4343", database_url=url)
    assert marketer.returncode == 1 and "no active manager or admin with Telegram id 4343" in marketer.stderr
    unknown = cli("client", "vip", "777", "on", database_url=url)
    assert unknown.returncode == 1 and "no client with Telegram id 777" in unknown.stderr
    assert cli("client", "assign", "5151", "claire", database_url=url).returncode == 1
    assert "has no account manager" in cli("client", "assign", "5151", "none", database_url=url).stdout
    assert "tag salon-2026 added" in cli("client", "tag", "5151", "Salon-2026", database_url=url).stdout
    assert "Étiquettes : salon-2026" in cli("client", "show", "5151", database_url=url).stdout
    bad_tag = cli("client", "tag", "5151", "deux mots", database_url=url)
    assert bad_tag.returncode == 1 and "a tag is 1 to 64 characters" in bad_tag.stderr
    assert "removed" in cli("client", "untag", "5151", "salon-2026", database_url=url).stdout


def test_cli_exports_leads_as_csv(tmp_path):
    from crm.clients import TelegramProfile, register_client
    from crm.db import engine_for, unit_of_work
    from crm.leads import save_lead

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli("migrate", database_url=url).returncode == 0
    with unit_of_work(engine_for(url)) as s:
        client, _ = register_client(s, TelegramProfile(5151, "Zoé"))
        save_lead(s, client, {"company": "Zoé & Co", "need": "12 écrans", "budget_eur": 6000}, complete=True)
    printed = cli("export", "leads", "--format", "csv", database_url=url)
    assert printed.returncode == 0
    header, row = printed.stdout.splitlines()
    assert header.startswith("id,created_at,status,score,") and ",Zoé & Co,,,12 écrans,6000," in row
    written = cli("export", "leads", "-o", str(tmp_path / "leads.csv"), database_url=url)
    assert "1 lead(s) written" in written.stdout and (tmp_path / "leads.csv").read_text(encoding="utf-8").count("\n") == 2
    refused = cli("export", "leads", "-o", str(tmp_path / "missing" / "leads.csv"), database_url=url)
    assert refused.returncode == 1 and "cannot write" in refused.stderr
    assert cli("export", "leads", "--format", "xlsx", database_url=url).returncode == 2


def test_cli_broadcasts(tmp_path):
    from crm.clients import TelegramProfile, register_client
    from crm.consent import set_consent
    from crm.db import engine_for, unit_of_work

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli("migrate", database_url=url).returncode == 0
    with unit_of_work(engine_for(url)) as s:
        for i, language in ((1, "fr"), (2, "en"), (3, "fr")):
            client, _ = register_client(s, TelegramProfile(7000 + i, f"C{i}", "", None, language))
            if i < 3:
                set_consent(s, client, True, "command")
    assert cli("broadcast", "count", "lang:fr", database_url=url).stdout.strip() == "1 recipient(s)"
    dry = cli("broadcast", "create", "--text-fr", "<b>Soldes</b> {prénom}", database_url=url)
    assert dry.returncode == 0 and "2 recipient(s) (segment: all). Nothing sent: add --yes" in dry.stdout
    assert dry.stdout.startswith("--- fr: as Élodie reads it (at most 78 of 4096 characters with the longest first "
                                 "names) ---\n<b>Soldes</b> Élodie\n--- en: no English version"), "a preview first"
    from datetime import date, datetime, timezone

    from sqlalchemy import select

    from crm.models import Broadcast

    year = date.today().year + 2  # ahead of the machine's clock, whatever it says
    later = cli("broadcast", "create", "--text-fr", "Soldes", "--segment", "lang:en", "--at", f"{year}-01-15 09:30",
                "--yes", database_url=url)
    assert later.returncode == 0 and f"scheduled for {year}-01-15 09:30: 1 recipient(s)" in later.stdout, later.stderr
    listing = cli("broadcast", "list", database_url=url).stdout
    assert f"\tscheduled\t{year}-01-15 09:30\t0/0 sent\tlang:en" in listing, "shown on the desk's clock"
    with unit_of_work(engine_for(url)) as s:
        stored = s.scalar(select(Broadcast.scheduled_at).where(Broadcast.segment == "lang:en"))
        assert stored.replace(tzinfo=timezone.utc) == datetime(year, 1, 15, 8, 30, tzinfo=timezone.utc), "UTC"
    gap = cli("broadcast", "create", "--text-fr", "x", "--at", "2027-03-28 02:30", "--yes", database_url=url)
    assert gap.returncode == 1 and "does not exist in Europe/Paris time: clocks jump from 02:00 to 03:00" in gap.stderr
    broadcast_id = listing.split("\t")[0]
    assert "cancelled" in cli("broadcast", "cancel", broadcast_id, database_url=url).stdout
    again = cli("broadcast", "cancel", broadcast_id, database_url=url)
    assert again.returncode == 1 and "already cancelled" in again.stderr
    for bad, error in ((["--text-fr", "<b>oops"], "never closed"), (["--text-fr", "x", "--segment", "colour:red"],
                                                                    "unknown condition"),
                       (["--text-fr", "x", "--at", "tomorrow"], "--at must be")):
        result = cli("broadcast", "create", *bad, database_url=url)
        assert result.returncode == 1 and error in result.stderr, (bad, result.stderr)
    no_token = cli("sender", database_url=url, extra_env={"TELEGRAM_BOT_TOKEN": ""})
    assert no_token.returncode == 1 and "needs TELEGRAM_BOT_TOKEN" in no_token.stderr


def test_secrets_and_the_crm_file_are_readable_by_their_owner_only(env, tmp_path, monkeypatch):
    import stat

    from sqlalchemy import text

    import crm.settings
    from crm.db import make_engine

    monkeypatch.setattr(crm.settings, "VAR", tmp_path / "var")
    monkeypatch.delenv("ACTION_SERVER_TOKEN", raising=False)
    token = crm.settings.read().action_token
    assert len(token) >= 32 and crm.settings.read().action_token == token, "one secret per installation"
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "var" / "action_token").stat().st_mode) == 0o600
    database = tmp_path / "var" / "crm.db"
    database.touch(mode=0o644)
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        conn.execute(text("create table t (x int)"))
    engine.dispose()
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_the_readme_lists_every_setting_and_only_real_ones():
    import re

    from bot.settings import Settings
    from crm.settings import _variable

    variables = {_variable(Settings, name) for name in Settings.model_fields}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| setting | default | meaning |"):]
    table = table[:table.index("\n\n")]
    listed = {name for row in table.splitlines()[2:] for name in re.findall(r"`([A-Z_]+)`", row.split("|")[1])}
    assert listed == variables


def test_a_setting_is_read_once_by_the_entry_point(env):
    import crm.settings

    env.setenv("STAFF_CHAT_ID", "-1001234567890")
    settings = crm.settings.install(load_settings())
    env.setenv("STAFF_CHAT_ID", "-1009999999999")
    assert crm.settings.current() is settings and crm.settings.current().staff_chat[0] == -1001234567890
