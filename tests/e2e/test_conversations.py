"""A client on Telegram (the emulator) talks to the whole assistant: bot, Rasa, actions, CRM."""

from __future__ import annotations

import random

import pytest

from bot.emulator import User
from tests.harness import BotHarness

pytestmark = pytest.mark.e2e


def client(language: str = "fr") -> User:
    # A new Telegram id per test, so the tracker stores (shared per stack) start afresh.
    return User(id=random.randint(10**9, 2 * 10**9), first_name="Camille", language_code=language)


async def test_bonjour_gets_the_french_greeting(stack):
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        [answer] = await bot.say(user, "bonjour")
    assert answer.text.startswith("Bonjour ! Je suis l'assistant relations clients.")
    assert answer.button_titles == ["Voir le catalogue", "Que savez-vous faire ?"]


async def test_hello_from_an_english_client_gets_the_english_greeting(stack):
    user = client("en")
    async with BotHarness(stack.settings) as bot:
        [answer] = await bot.say(user, "hello")
    assert answer.text.startswith("Hello! I am the client relations assistant.")


async def test_asking_for_printers_lists_them_with_prices(stack):
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        [answer] = await bot.say(user, "avez-vous des imprimantes ?")
    assert answer.text.startswith("Voici notre rayon Imprimantes :")
    assert "Imprimante laser HP LaserJet Pro M404dn (IMP-HP-M404) — 289,00 € — en stock" in answer.text
    assert answer.text.count("•") == 5


async def test_the_catalogue_through_buttons(stack):
    user = client("en")
    async with BotHarness(stack.settings) as bot:
        [greeting] = await bot.say(user, "/start")
        bot.emulator.user_presses(user, greeting, index=0)  # "Browse the catalogue"
        ranges = (await bot.wait(user, 2))[-1]
        assert ranges.text == "Here are our ranges. Which one interests you?"
        bot.emulator.user_presses(user, ranges, index=ranges.button_titles.index("Monitors"))
        screens = (await bot.wait(user, 3))[-1]
    assert screens.text.startswith("Here is our Monitors range:")
    assert "Dell P2423D 24 pouces (ECR-DEL-P2423) — €279.00 — in stock" in screens.text


async def test_gibberish_gets_a_request_to_rephrase(stack):
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        [answer] = await bot.say(user, "zkqw vbnx plourf")
    assert answer.text in {
        "Je ne suis pas sûr d'avoir compris. Pourriez-vous reformuler votre question ?",
        "Désolé, je ne peux pas vous aider sur ce sujet. Je peux répondre à vos questions sur nos "
        "produits, nos prix et notre stock.",
    }


async def test_rasa_stopped_mid_conversation_gives_the_apology_then_the_answer(sqlite_stack):
    user = client("fr")
    services = sqlite_stack.services
    async with BotHarness(sqlite_stack.settings) as bot:
        [answer] = await bot.say(user, "bonjour")
        assert answer.text.startswith("Bonjour !")
        services.stop("rasa")
        try:
            [apology] = await bot.say(user, "avez-vous des écrans ?")
            assert apology.text.startswith("Désolé, je rencontre un problème technique")
            before = len(bot.emulator.messages_to(user.id))
        finally:
            services.start_rasa()
            services.wait_ready(240)
        # Nobody has to ask again: the message kept unanswered is answered once Rasa is back.
        back, owed = (await bot.wait(user, before + 2, timeout=60))[before:before + 2]
        assert back.text == "Me revoilà, pardon pour l'attente ! Votre message « avez-vous des écrans ? » :"
        assert owed.text.startswith("Voici notre rayon Écrans :")
        [again] = await bot.say(user, "avez-vous des écrans ?")
    assert again.text.startswith("Voici notre rayon Écrans :")


def test_the_local_chat_in_the_terminal(sqlite_stack):
    """What a newcomer does after `make run` without a token: type in the terminal, read answers."""
    import os
    import subprocess
    import sys

    from crm.settings import ROOT

    settings = sqlite_stack.settings
    env = {**os.environ, "DATABASE_URL": settings.database_url, "RASA_URL": settings.rasa_url,
           "RASA_TOKEN": settings.rasa_token}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--language", "en"], cwd=ROOT, env=env,
        input="do you have printers?\n1\n/quit\n", capture_output=True, text=True, timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Assistant: Hello! I am the client relations assistant." in out
    assert "  [1] Browse the catalogue" in out
    assert "Assistant: Here is our Printers range:" in out
    first = out.split("Here is our Printers range:")[1].split("  [1] ")[1].splitlines()[0]
    assert f"Assistant: {first} (" in out and "\nPrice: " in out, "typing 1 presses the first button"


def test_in_the_terminal_a_number_after_a_question_is_a_quantity(sqlite_stack):
    import os
    import subprocess
    import sys

    from crm.settings import ROOT

    settings = sqlite_stack.settings
    env = {**os.environ, "DATABASE_URL": settings.database_url, "RASA_URL": settings.rasa_url,
           "RASA_TOKEN": settings.rasa_token}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--language", "en"], cwd=ROOT, env=env,
        input="I want to order the MX Master mouse\n2\n/quit\n", capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Assistant: Which address should we deliver to?" in result.stdout


def test_no_secret_shows_on_a_command_line_and_the_stack_listens_on_loopback(stack):
    """`ps` shows every user the command lines: neither the Rasa token nor the action server's
    secret may be there. And the action server of the running stack refuses a caller without it."""
    from pathlib import Path

    import httpx

    settings = stack.settings
    for name, process in stack.services.processes.items():
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        if not cmdline.exists():
            pytest.skip("no /proc on this system")
        words = cmdline.read_bytes().decode(errors="replace")
        assert settings.rasa_token not in words and settings.action_token not in words, name
    forged = {"next_action": "action_order_status", "sender_id": "1", "tracker": {"sender_id": "1"}, "domain": {}}
    assert httpx.post(f"{settings.action_url}/webhook", json=forged, timeout=10).status_code == 401


def test_rasa_answers_only_the_bot_that_holds_its_token(stack):
    """Rasa's port reached without RASA_TOKEN (a wrong one, none, a tampered body): 401 or 400,
    and nothing reaches the conversation: nobody can write as a client (the actions trust the
    sender id) or read their answers. With the token, the client is answered."""
    import httpx

    settings = stack.settings
    webhook = f"{settings.rasa_url}/webhooks/rest/webhook"
    sender = str(random.randint(10**9, 2 * 10**9))
    said = {"sender": sender, "message": "où en est ma commande ?", "metadata": {"language": "fr"}}
    refused = [
        httpx.post(webhook, json=said, timeout=30),
        httpx.post(webhook, json=said, headers={"Authorization": "Bearer not-the-token-0123456789"}, timeout=30),
        httpx.post(webhook, json=said, headers={"Authorization": settings.rasa_token}, timeout=30),
        httpx.post(webhook, json=said, params={"token": settings.rasa_token}, timeout=30),
    ]
    assert [r.status_code for r in refused] == [401] * 4
    assert all("commande" not in r.text for r in refused)
    tracker = httpx.get(f"{settings.rasa_url}/conversations/{sender}/tracker",
                        params={"token": settings.rasa_token}, timeout=30).json()
    assert [e for e in tracker["events"] if e["event"] == "user"] == []

    bearer = {"Authorization": f"Bearer {settings.rasa_token}"}
    for tampered in ({"sender": int(sender), "message": "bonjour"}, {"sender": sender}, ["bonjour"]):
        assert httpx.post(webhook, json=tampered, headers=bearer, timeout=30).status_code == 400
    assert httpx.post(webhook, content=b"{not json", headers=bearer, timeout=30).status_code == 400

    answers = httpx.post(webhook, json={**said, "message": "bonjour"}, headers=bearer, timeout=60).json()
    assert answers[0]["text"].startswith("Bonjour ! Je suis l'assistant relations clients.")
