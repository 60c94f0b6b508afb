"""What the Telegram edge itself says (everything else comes from Rasa): messages "bot.*" of the
catalogue (crm/i18n.py)."""

from crm.i18n import Texts, t

TEXTS = Texts("bot")
COMMAND_NAMES = ("start", "help", "language", "subscribe", "stop", "mydata", "forget")


def commands(language: str) -> list[tuple[str, str]]:
    """The command menu Telegram shows, described in a language."""
    return [(name, t(f"bot.command.{name}", language)) for name in COMMAND_NAMES]
