"""The bot alone, polling the Bot API named by TELEGRAM_BASE_URL (the end-to-end benchmark runs it
in its own process, to measure it as in production)."""

from __future__ import annotations

from bot.app import build_application
from bot.shared import ALLOWED_UPDATES
from bot.settings import load_settings


def main() -> None:
    application = build_application(load_settings())
    application.run_polling(allowed_updates=ALLOWED_UPDATES, poll_interval=0.0, timeout=10)


if __name__ == "__main__":
    main()
