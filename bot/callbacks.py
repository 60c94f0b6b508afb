"""The callback data of our inline buttons: the one place that knows how a button is written for
Telegram (64 bytes at most, and anyone can forge it) and how it is read back.

crm/ describes a button by what pressing it does, never by Telegram's wire format:
`{"title": ..., "action": "take", "args": [handoff id]}` (crm.outbox.button). The outbox renders
it here; each handler reads its button back with `parse`, which refuses whatever does not have
exactly the action's shape (the CRM then checks that the ids belong to the one who pressed)."""

from __future__ import annotations

import re
from dataclasses import dataclass


KINDS = {"n": (r"\d{1,9}", int), "token": (r"[A-Za-z0-9_-]{1,40}", str), "word": (r"[a-z_]{1,20}", str),
         "step": (r"(?:seg:)?[a-z]{1,10}", str), "intent": (r"[a-z_]{1,40}", str)}


@dataclass(frozen=True)
class Action:
    prefix: str
    args: tuple[str, ...]  # the kind of each argument (KINDS), joined by ":" in the data

    def pattern(self) -> re.Pattern:
        return re.compile(re.escape(self.prefix) + ":".join(f"({KINDS[kind][0]})" for kind in self.args))


ACTIONS = {
    "take": Action("take:", ("n",)),                  # a manager takes handoff N
    "leave": Action("hleave:", ("n",)),               # a queued client goes back to the assistant
    "rate_handoff": Action("hrate:", ("n", "n")),     # the client scores handoff N
    "rate_complaint": Action("rate:", ("n", "n")),    # the client scores complaint N
    "meet": Action("meet:", ("n",)),                  # a manager proposes a meeting to client N
    "choice": Action("b:", ("token",)),               # a choice whose payload stays in the CRM
    "language": Action("lang:", ("word",)),           # the client picks a language
    "lead_status": Action("lstat:", ("n", "word")),   # a manager sets lead N's status
    "compose": Action("bc:", ("n", "step")),          # a marketer's step in composing broadcast N
    "unsubscribe": Action("unsub:", ("n",)),          # under a promotion of broadcast N: opt out
    "review": Action("rv:", ("n", "intent")),         # a reviewer labels message N (crm/review.py)
    "forget": Action("fg:", ("n", "word")),           # erase client N's data: yes / no (crm/privacy.py)
}


def callback_data(action: str, *args) -> str:
    """The callback data of a button that does `action` with `args`."""
    data = ACTIONS[action].prefix + ":".join(str(arg) for arg in args)
    if len(data.encode()) > 64:
        raise ValueError(f"callback data over Telegram's 64 bytes: {data!r}")
    return data


def handler_pattern(action: str) -> str:
    """What CallbackQueryHandler matches for `action`."""
    return "^" + re.escape(ACTIONS[action].prefix)


def parse(action: str, data: str | None) -> tuple | None:
    """The arguments of a pressed `action` button (numbers as int), or None when the data does
    not have the action's shape (tampered, or another button)."""
    match = ACTIONS[action].pattern().fullmatch(data or "")
    if match is None:
        return None
    kinds = ACTIONS[action].args
    return tuple(KINDS[kind][1](arg) for kind, arg in zip(kinds, match.groups()))


def render(button: dict) -> tuple[str, str]:
    """(title, callback data) of an outbox button. A row queued before buttons carried actions
    holds its callback data already: sent as it is."""
    if "data" in button:
        return button["title"], button["data"]
    return button["title"], callback_data(button["action"], *button.get("args", ()))
