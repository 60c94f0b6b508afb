"""The local chat: talk to the assistant in a terminal, through the same bot code as Telegram.

A Bot API emulator on 127.0.0.1 stands in for Telegram; the terminal plays the client. Buttons
are shown as numbered choices: type the number to press one of the latest message's buttons.
/quit (or Ctrl-D) ends the chat.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from bot.app import build_application
from bot.emulator import BotApiEmulator, Sent, User
from bot.settings import Settings
from crm.clients import TelegramProfile, register_client, set_language
from crm.db import engine_for, unit_of_work
from crm.i18n import t
from crm.settings import private_var

LOCAL_TOKEN = "100000000:local-chat-token-not-a-real-one"
LOCAL_USER_ID = 100_000_001


def save_document(sent: Sent, field: str = "document") -> Path:
    """A file the bot sent in the local chat (a document, an uploaded photo such as a report's
    chart), written under var/downloads/ (ours alone)."""
    folder = private_var() / "downloads"
    folder.mkdir(mode=0o700, exist_ok=True)
    name = Path(str(sent.params.get(field, "file")).removeprefix("<upload ").rstrip(">")).name or "file"
    path = folder / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    content = sent.params.get(f"{field}_bytes")
    with os.fdopen(descriptor, "wb") as f:
        f.write(content if isinstance(content, bytes) else str(sent.params.get(f"{field}_content", "")).encode())
    return path


async def chat(settings: Settings, language: str = "fr", stdin: TextIO = sys.stdin,
               stdout: TextIO = sys.stdout, emulator: BotApiEmulator | None = None) -> None:
    """The local chat. With `emulator`, bot processes of the replica layout already answer it
    (bot/layout.py): no bot runs here, the terminal only plays the client."""
    layout = emulator is not None
    emulator = emulator or BotApiEmulator().start()
    user = User(id=LOCAL_USER_ID, first_name="Client", last_name="Local", language_code=language)
    choices: list[Sent] = []

    def show(sent: Sent) -> None:
        prefix = t("console.edited", language) + " " if sent.method.startswith("edit") else ""
        if sent.photo and str(sent.photo).startswith("<upload "):  # a chart: saved beside the CRM
            stdout.write(f"\n{t('console.file', language, path=save_document(sent, 'photo'))}\n")
        elif sent.photo:
            stdout.write(f"\n[image] {sent.photo}\n")
        if sent.method == "sendDocument":  # a file (the client's data, /mydata): saved beside the CRM
            stdout.write(f"\n{t('console.file', language, path=save_document(sent))}\n")
        if sent.text:
            stdout.write(f"\nAssistant: {prefix}{sent.text}\n")
        # A number presses a button of the latest message only: once the assistant has asked
        # something else ("how many?"), typing 2 means 2.
        choices[:] = [sent] if sent.buttons else []
        for i, title in enumerate(sent.button_titles, 1):
            stdout.write(f"  [{i}] {title}\n")
        stdout.flush()

    emulator.listeners.append(show)

    def wait_for_answer(before: int, timeout: float) -> None:
        try:
            emulator.wait_for(lambda sent: len(sent) > before, timeout)
        except TimeoutError:
            return
        last = len(emulator.sent)
        while True:  # an answer may be several messages: wait until the bot is quiet
            time.sleep(0.4)
            if len(emulator.sent) == last:
                return
            last = len(emulator.sent)

    stdout.write(t("console.greeting", language) + "\n")
    stdout.flush()
    def remember_language(session):  # the --language asked for wins over an earlier session's choice
        client, _ = register_client(session, TelegramProfile(user.id, user.first_name, user.last_name, None, language))
        set_language(session, client, language)

    async def talk() -> None:
        before = len(emulator.sent)
        emulator.user_says(user, "/start")
        await asyncio.to_thread(wait_for_answer, before, settings.rasa_timeout + 10)
        while True:
            stdout.write(f"\n{t('console.you', language)}> ")
            stdout.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            line = line.strip()
            if line in ("/quit", "/exit", "/q"):
                break
            before = len(emulator.sent)
            if line.isdigit() and choices and 1 <= int(line) <= len(choices[0].button_titles):
                emulator.user_presses(user, choices[0], index=int(line) - 1)
            elif line:
                emulator.user_says(user, line)
            else:
                continue
            await asyncio.to_thread(wait_for_answer, before, settings.rasa_timeout + 10)

    if layout:
        with unit_of_work(engine_for(settings.database_url)) as session:
            remember_language(session)
        await talk()
        return
    application = build_application(settings.model_copy(update={"telegram_base_url": emulator.base_url}),
                                    token=LOCAL_TOKEN)
    async with application:
        await application.assistant.db(remember_language)
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=5)
        try:
            await talk()
        finally:
            await application.updater.stop()
            await application.stop()
            emulator.stop()
