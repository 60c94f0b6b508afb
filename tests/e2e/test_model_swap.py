"""A model swapped into the running Rasa (bot/retrain.swap, PUT /model) while clients write:
every message is answered once, and Rasa serves the new model after, with no restart."""

from __future__ import annotations

import asyncio
import random
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot import retrain
from bot.emulator import User
from tests.harness import BotHarness

pytestmark = pytest.mark.e2e


async def test_fifty_messages_during_a_swap_are_each_answered_once(stack, tmp_path):
    url, token = stack.settings.rasa_url, stack.settings.rasa_token
    serving = await asyncio.to_thread(retrain.served_model, url, token)
    assert serving is not None and serving.exists()
    candidate = tmp_path / f"swapped-{serving.name}"
    shutil.copy2(serving, candidate)  # the same model under another name: the swap is what is tested
    # Each client below waits for its answer in a thread: enough threads for all of them and for
    # the bot's own work (the harness runs the bot in this process).
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=80))
    clients = [User(id=random.randint(10**9, 2 * 10**9), first_name=f"Client{i}", language_code="fr")
               for i in range(50)]
    try:
        async with BotHarness(stack.settings) as bot:
            async def write(i: int, user: User):
                await asyncio.sleep(i * 0.05)  # spread over the swap
                return await bot.say(user, "bonjour", timeout=120)

            swapping = asyncio.create_task(asyncio.to_thread(retrain.swap, url, token, candidate, serving))
            answers = await asyncio.gather(*(write(i, user) for i, user in enumerate(clients)))
            assert await swapping, "GET /status names the new model"
            await asyncio.sleep(2)  # a doubled answer would have arrived by now
            for user, answer in zip(clients, answers):
                assert len(bot.emulator.messages_to(user.id)) == 1, user.first_name
                assert answer[0].text.startswith(("Bonjour", "Re-bonjour")), answer[0].text
        served = await asyncio.to_thread(retrain.served_model, url, token)
        assert served.name == candidate.name
    finally:
        assert await asyncio.to_thread(retrain.swap, url, token, serving, None), "the first model back"
