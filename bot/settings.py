"""Settings of the bot process, from the environment or `.env`. A wrong value stops start-up with
a message that names the setting."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from crm.settings import MIN_SECRET_LENGTH, SettingError, database_url, load_env, secret_setting, staff_chat

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclass(frozen=True)
class Settings:
    telegram_token: str | None
    telegram_base_url: str
    database_url: str
    rasa_url: str
    rasa_port: int
    action_port: int
    action_url: str
    rasa_token: str
    action_token: str
    rasa_timeout: float
    webhook_url: str | None
    webhook_secret: str | None
    webhook_listen: str
    webhook_port: int
    broadcast_rate: float = 30.0
    run_sender: bool = True
    rasa_host: str = "127.0.0.1"  # the interface `python -m bot run` starts Rasa on

    @property
    def local_chat(self) -> bool:
        """No Telegram token: the assistant runs with a local Bot API emulator and a terminal chat."""
        return self.telegram_token is None


def _url(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip() or default
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingError(f"{name} must be an http(s) URL (got {value!r})")
    return value.rstrip("/")


def _port(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SettingError(f"{name} must be a port number between 1 and 65535 (got {value!r})")
    return int(value)


def _number(name: str, default: float, highest: float, unit: str) -> float:
    """A number in (0, highest] from the environment, or the default."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1
    if not 0 < number <= highest:
        raise SettingError(f"{name} must be a number of {unit} between 0 and {highest:g} (got {value!r})")
    return number


def load_settings() -> Settings:
    load_env()
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip() or None
    if token is not None and not TOKEN_RE.match(token):
        raise SettingError("TELEGRAM_BOT_TOKEN does not look like a token from @BotFather (123456:ABC...)")
    rasa_port = _port("RASA_PORT", 5005)
    action_port = _port("ACTION_PORT", 5055)
    webhook_url = os.environ.get("WEBHOOK_URL", "").strip() or None
    if webhook_url is not None:
        webhook_url = _url("WEBHOOK_URL", webhook_url)
        if not webhook_url.startswith("https://"):
            raise SettingError("WEBHOOK_URL must be an https:// URL (Telegram only calls https)")
    secret = os.environ.get("WEBHOOK_SECRET", "").strip() or None
    if secret is not None and not SECRET_RE.match(secret):
        raise SettingError("WEBHOOK_SECRET may only hold A-Z, a-z, 0-9, _ and -, 1 to 256 characters")
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise SettingError(f"WEBHOOK_SECRET must be at least {MIN_SECRET_LENGTH} characters long "
                           f"(got {len(secret)}): anyone could guess a short one")
    if webhook_url and not secret:
        raise SettingError("WEBHOOK_SECRET is required with WEBHOOK_URL (Telegram's secret token)")
    staff_chat()  # checked now, so that a wrong STAFF_CHAT_ID stops start-up with its name
    return Settings(
        telegram_token=token,
        telegram_base_url=_url("TELEGRAM_BASE_URL", DEFAULT_BASE_URL),
        database_url=database_url(),
        rasa_url=_url("RASA_URL", f"http://127.0.0.1:{rasa_port}"),
        rasa_port=rasa_port,
        action_port=action_port,
        action_url=_url("ACTION_SERVER_URL", f"http://127.0.0.1:{action_port}"),
        rasa_token=secret_setting("RASA_TOKEN", "rasa_token"),
        action_token=secret_setting("ACTION_SERVER_TOKEN", "action_token"),
        rasa_timeout=_number("RASA_TIMEOUT", 15.0, 600, "seconds"),
        webhook_url=webhook_url,
        webhook_secret=secret,
        webhook_listen=os.environ.get("WEBHOOK_LISTEN", "0.0.0.0").strip() or "0.0.0.0",
        webhook_port=_port("WEBHOOK_PORT", 8443),
        broadcast_rate=_number("BROADCAST_RATE", 30.0, 1000, "messages a second"),
        run_sender=os.environ.get("BROADCAST_SENDER", "bot").strip().lower() != "separate",
        rasa_host=os.environ.get("RASA_HOST", "").strip() or "127.0.0.1",
    )
