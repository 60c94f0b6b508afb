"""Meetings in the conversation: offer the managers' free slots, book the one the client picks,
move or cancel it (from the conversation or the reminder's buttons). The CRM side is
crm/meetings.py; the invitation (.ics) and the reminders go through the outbox."""

from __future__ import annotations

import asyncio

from actions.common import CrmAction, button, client_for, entity, in_unit_of_work, run_in_unit_of_work
from crm.company import policy_answer
from crm.i18n import Texts
from crm.meetings import (
    AlreadyBooked,
    MeetingError,
    SlotTaken,
    book,
    book_in_turn,
    cancel,
    free_slots,
    length,
    parse_slot,
    slot_buttons,
    slot_payload,
    upcoming,
    when_text,
)
from crm.models import Staff

TEXTS = Texts("chat.meetings")



def minutes() -> int:
    return int(length().total_seconds() // 60)


async def offer(dispatcher, tracker, language: str, replacing: int | None = None, intro: str = "") -> None:
    """The next free slots as buttons; when none, how to reach the sales team instead."""
    def work(session):
        client = client_for(session, tracker)
        return slot_buttons(session, client, free_slots(session, client), replacing)

    buttons = await in_unit_of_work(work)
    if not buttons:
        dispatcher.utter_message(text=(intro + " " if intro else "") + TEXTS.t(
            "none_free", language, contact=policy_answer("book_meeting", language)))
        return
    text = TEXTS.t("offer_move", language) if replacing is not None else TEXTS.t("offer", language, minutes=minutes())
    dispatcher.utter_message(text=(intro + " " if intro else "") + text, buttons=buttons)


class ActionOfferMeeting(CrmAction):
    """book_meeting: the client's upcoming meeting (move, cancel, keep), or free slots."""

    def name(self) -> str:
        return "action_offer_meeting"

    async def answer(self, dispatcher, tracker, domain, language):
        def work(session):
            meetings = upcoming(session, client_for(session, tracker))
            if not meetings:
                return None
            meeting = meetings[0]
            return meeting.id, when_text(meeting.starts_at, language), session.get(Staff, meeting.manager_id).name

        current = await in_unit_of_work(work)
        if current is None:
            await offer(dispatcher, tracker, language)
            return []
        meeting_id, when, manager = current
        dispatcher.utter_message(text=TEXTS.t("has_meeting", language, when=when, manager=manager.split()[0]), buttons=[
            button(TEXTS.t("move", language), "reschedule_meeting", meeting_id=str(meeting_id)),
            button(TEXTS.t("cancel", language), "cancel_meeting", meeting_id=str(meeting_id)),
            button(TEXTS.t("keep", language), "affirm"),
        ])
        return []


def _meeting_id(tracker) -> int | None:
    value = entity(tracker, "meeting_id")
    return int(value) if value and value.isdigit() else None


class ActionBookMeeting(CrmAction):
    """choose_slot: book the slot pressed (moving the meeting given, if any). A slot taken in the
    meantime, or a tampered one, gets the next free slots instead."""

    def name(self) -> str:
        return "action_book_meeting"

    async def answer(self, dispatcher, tracker, domain, language):
        starts_at = parse_slot(entity(tracker, "meeting_slot"))
        replacing = _meeting_id(tracker)

        def work(session):
            client = client_for(session, tracker)
            meeting = book(session, client, starts_at, replacing=replacing)
            return when_text(meeting.starts_at, language), session.get(Staff, meeting.manager_id).name

        if starts_at is None:
            await offer(dispatcher, tracker, language, intro=TEXTS.t("taken", language))
            return []
        try:
            when, manager = await asyncio.to_thread(book_in_turn, run_in_unit_of_work, work)
        except AlreadyBooked as already:  # an old slot button, or a manager's proposal: offer to move
            booked_id = already.meeting_id  # the except block's name is gone once the block ends
            await in_unit_of_work(lambda s: self._offer_move(s, dispatcher, booked_id, starts_at, language))
            return []
        except SlotTaken:
            await offer(dispatcher, tracker, language, replacing, intro=TEXTS.t("taken", language))
            return []
        except MeetingError:
            dispatcher.utter_message(text=TEXTS.t("no_meeting", language))
            return []
        key = "moved" if replacing is not None else "booked"
        dispatcher.utter_message(text=TEXTS.t(key, language, when=when, manager=manager.split()[0], minutes=minutes()))
        return []


    @staticmethod
    def _offer_move(session, dispatcher, meeting_id: int, starts_at, language: str) -> None:
        from crm.desk_hours import short_text
        from crm.models import Meeting

        meeting = session.get(Meeting, meeting_id)
        manager = session.get(Staff, meeting.manager_id).name.split()[0]
        dispatcher.utter_message(text=TEXTS.t("already", language, when=when_text(meeting.starts_at, language),
                                        manager=manager, new=when_text(starts_at, language)), buttons=[
            {"title": TEXTS.t("move_there", language), "payload": slot_payload(starts_at, meeting_id)},
            button(TEXTS.t("keep_current", language, when=short_text(meeting.starts_at, language)), "affirm"),
        ])


class ActionRescheduleMeeting(CrmAction):
    def name(self) -> str:
        return "action_reschedule_meeting"

    async def answer(self, dispatcher, tracker, domain, language):
        meeting_id = _meeting_id(tracker)
        if meeting_id is None:
            meetings = await in_unit_of_work(lambda s: [m.id for m in upcoming(s, client_for(s, tracker))])
            meeting_id = meetings[0] if len(meetings) == 1 else None
        if meeting_id is None:
            dispatcher.utter_message(text=TEXTS.t("no_meeting", language))
            return []
        await offer(dispatcher, tracker, language, replacing=meeting_id)
        return []


class ActionCancelMeeting(CrmAction):
    def name(self) -> str:
        return "action_cancel_meeting"

    async def answer(self, dispatcher, tracker, domain, language):
        meeting_id = _meeting_id(tracker)

        def work(session):
            client = client_for(session, tracker)
            target = meeting_id
            if target is None:
                meetings = upcoming(session, client)
                target = meetings[0].id if len(meetings) == 1 else None
            if target is None:
                return None
            meeting = cancel(session, client, target)
            return when_text(meeting.starts_at, language)

        try:
            when = await in_unit_of_work(work)
        except MeetingError:
            when = None
        if when is None:
            dispatcher.utter_message(text=TEXTS.t("no_meeting", language))
            return []
        dispatcher.utter_message(text=TEXTS.t("cancelled", language, when=when))
        return []
