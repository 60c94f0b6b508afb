"""Inline buttons: crm/ names what a button does, bot/callbacks.py writes and reads Telegram's
callback data; a pressed button with anything but its action's exact shape is refused."""

from __future__ import annotations

import pytest

from bot.callbacks import ACTIONS, callback_data, parse, render
from crm.outbox import button


def test_a_crm_button_is_rendered_as_callback_data_and_read_back():
    title, data = render(button("Prendre", "take", 42))
    assert (title, data) == ("Prendre", "take:42")
    assert parse("take", data) == (42,)
    assert parse("rate_handoff", callback_data("rate_handoff", 7, 5)) == (7, 5)
    assert parse("choice", callback_data("choice", "0123")) == ("0123",), "a token stays a string"


def test_an_outbox_row_queued_before_actions_existed_is_sent_as_it_was():
    assert render({"title": "5", "data": "rate:3:5"}) == ("5", "rate:3:5")


@pytest.mark.parametrize("action,data", [
    ("take", "take:"), ("take", "take:12x"), ("take", "take:1234567890"), ("take", "hrate:1:2"),
    ("rate_handoff", "hrate:1"), ("rate_handoff", "hrate:1:2:3"), ("choice", "b:../etc"),
    ("lead_status", "lstat:1:WON;drop"), ("compose", "bc:1:seg:all:x"), ("language", "lang:"), ("take", None),
])
def test_tampered_callback_data_is_refused(action, data):
    assert parse(action, data) is None


def test_every_action_fits_telegrams_64_bytes_and_prefixes_do_not_overlap():
    prefixes = [a.prefix for a in ACTIONS.values()]
    assert not [p for p in prefixes for q in prefixes if p != q and q.startswith(p)]
    assert len(callback_data("compose", 999_999_999, "seg:all").encode()) <= 64
    with pytest.raises(ValueError):
        callback_data("choice", "x" * 70)
