"""The action server as it runs (`python -m actions.server`, a real process): closed to anyone
without the shared secret, on 127.0.0.1, no CORS, and no tracker in an error's answer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from crm.clients import TelegramProfile, register_client
from crm.consent import has_consent
from crm.db import unit_of_work
from crm.demo import load_demo_if_empty
from crm.models import Client, Consent, Order, Product
from crm.orders import place_order
from crm.settings import ROOT
from tests.harness import free_port

SECRET = "the-shared-secret-of-this-test"
VICTIM = 4242


@pytest.fixture
def server(engine, tmp_path):
    with unit_of_work(engine) as s:
        load_demo_if_empty(s)
        victim, _ = register_client(s, TelegramProfile(VICTIM, "Victor", "Hugo"))
        product = s.scalar(select(Product).where(Product.sku == "IMP-HP-M404"))
        place_order(s, victim, product.id, 1, "12 rue des Secrets, 75001 Paris")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False), "PYTHONPATH": str(ROOT),
           "ACTION_SERVER_TOKEN": SECRET}
    env.pop("ACTION_SERVER_HOST", None)
    log = open(tmp_path / "actions.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "actions.server", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError((tmp_path / "actions.log").read_text())
        time.sleep(0.2)
    yield url, port, engine, tmp_path / "actions.log"
    process.terminate()
    process.wait(timeout=15)
    log.close()


def call(action: str, sender: str, text: str, intent: str = "order_status") -> dict:
    return {
        "next_action": action, "sender_id": sender, "version": "3.6.2",
        "tracker": {"sender_id": sender, "slots": {"language": "fr"}, "latest_message": {
            "text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": [], "metadata": {}},
            "events": [], "paused": False, "followup_action": None, "active_loop": {},
            "latest_action_name": "action_listen"},
        "domain": {"slots": {"language": {"type": "text", "mappings": [{"type": "custom"}]}}},
    }


def test_a_call_without_the_secret_is_refused_and_reads_or_changes_nothing(server):
    url, _, engine, _ = server
    forged = call("action_order_status", str(VICTIM), "où en est ma commande ?")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET},
                    {"Authorization": f"Bearer {SECRET}x"}):
        answer = httpx.post(f"{url}/webhook", json=forged, headers=headers, timeout=10)
        assert answer.status_code == 401, headers
        assert "rue des Secrets" not in answer.text and "CMD-" not in answer.text
    for action, sender in (("action_subscribe", str(VICTIM)), ("action_subscribe", "5151")):
        assert httpx.post(f"{url}/webhook", json=call(action, sender, "oui", "subscribe"), timeout=10).status_code == 401
    assert httpx.get(f"{url}/actions", timeout=10).status_code == 401, "not even the list of actions"
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count(Consent.id))) == 0
        assert s.scalar(select(Client.id).where(Client.telegram_id == 5151)) is None, "no client created"
        victim = s.scalar(select(Client).where(Client.telegram_id == VICTIM))
        assert not has_consent(s, victim)
        assert s.scalar(select(func.count(Order.id))) == 1

    answer = httpx.post(f"{url}/webhook", json=forged, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10)
    assert answer.status_code == 200 and "CMD-" in answer.text, "Rasa, which holds the secret, is served"


def test_it_listens_on_loopback_only_and_allows_no_other_origin(server):
    url, port, _, _ = server
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        pytest.skip("no /proc/net/tcp on this system to read the listening address from")
    listening = [line.split()[1] for table in tables if table.exists() for line in table.read_text().splitlines()[1:]
                 if line.split()[3] == "0A" and int(line.split()[1].rsplit(":", 1)[1], 16) == port]
    assert listening == ["0100007F:%04X" % port], "127.0.0.1 only, not 0.0.0.0"
    preflight = httpx.options(f"{url}/webhook", headers={"Origin": "https://evil.example",
                                                         "Access-Control-Request-Method": "POST"}, timeout=10)
    assert "access-control-allow-origin" not in {k.lower() for k in preflight.headers}


def test_a_failing_call_apologises_without_the_tracker_and_logs_none_of_it(server):
    url, _, _, log = server
    broken = call("validate_order_form", str(VICTIM), "livrez au 12 rue des Secrets")
    broken["tracker"]["events"] = "not a list of events"  # what makes rasa-sdk raise
    broken["tracker"]["slots"] = {"language": "fr", "delivery_address": "12 rue des Secrets"}
    answer = httpx.post(f"{url}/webhook", json=broken, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10)
    assert answer.status_code == 200, "Rasa goes on with the conversation instead of dropping the turn"
    assert answer.json() == {"events": [], "responses": [{"text": (
        "Désolé, un problème technique m'empêche de traiter cette étape. Pouvez-vous réessayer dans un instant, "
        "ou reformuler ?")}]}
    time.sleep(0.3)
    logged = log.read_text(errors="replace")
    assert "action validate_order_form failed" in logged, "the failure is logged"
    assert "rue des Secrets" not in logged


async def test_a_form_validator_that_raises_apologises_in_the_clients_language():
    from rasa_sdk import FormValidationAction

    from actions.server import safe_executor

    class ValidateBrokenForm(FormValidationAction):
        def name(self):
            return "validate_broken_form"

        async def validate_quantity(self, value, dispatcher, tracker, domain):
            raise RuntimeError("the CRM went away with 12 rue des Secrets")

    executor = safe_executor()()
    executor.register_action(ValidateBrokenForm())
    tracker = {"sender_id": "1", "slots": {"language": "en", "requested_slot": "quantity", "quantity": "3"},
               "latest_message": {"text": "3", "intent": {"name": "inform"}, "entities": []},
               "events": [{"event": "slot", "name": "quantity", "value": "3"}], "active_loop": {"name": "broken_form"},
               "paused": False, "latest_event_time": 1, "followup_action": None, "latest_input_channel": "rest",
               "latest_action_name": "action_listen"}
    domain = {"forms": {"broken_form": {"required_slots": ["quantity"]}}, "slots": {"quantity": {"type": "text"}}}
    answer = await executor.run({"next_action": "validate_broken_form", "tracker": tracker, "domain": domain})
    assert answer == {"events": [], "responses": [{"text": "Sorry, a technical problem keeps me from handling this "
                                                           "step. Could you try again in a moment, or rephrase?"}]}
