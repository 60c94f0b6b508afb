"""Settings of the bot process: the shared ones (crm/settings.py) plus Telegram, Rasa and the
webhook. Read once by `python -m bot` and handed to the application; a wrong value stops start-up
with a message that names the setting."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from crm.settings import MIN_SECRET_LENGTH, Port, env, installation_secret, long_secret, read
from crm.settings import Settings as SharedSettings

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"must be an http(s) URL (got {value!r})")
    return value.rstrip("/")


class Settings(SharedSettings):
    telegram_token: str | None = Field(None, repr=False, validation_alias=env("TELEGRAM_BOT_TOKEN", "telegram_token"))
    telegram_base_url: str = Field(DEFAULT_BASE_URL, validation_alias=env("TELEGRAM_BASE_URL", "telegram_base_url"))
    rasa_port: Port = Field(5005, validation_alias=env("RASA_PORT", "rasa_port"))
    rasa_host: str = Field("127.0.0.1", validation_alias=env("RASA_HOST", "rasa_host"))  # where `run` starts Rasa
    rasa_url: str = Field("", validation_alias=env("RASA_URL", "rasa_url"))
    action_url: str = Field("", validation_alias=env("ACTION_SERVER_URL", "action_url"))
    rasa_token: str = Field("", repr=False, validation_alias=env("RASA_TOKEN", "rasa_token"))
    rasa_timeout: Annotated[float, Field(gt=0, le=600)] = Field(15.0, validation_alias=env("RASA_TIMEOUT", "rasa_timeout"))
    rasa_concurrency: Annotated[int, Field(ge=1, le=1000)] = Field(
        16, validation_alias=env("RASA_CONCURRENCY", "rasa_concurrency"))
    webhook_url: str | None = Field(None, validation_alias=env("WEBHOOK_URL", "webhook_url"))
    webhook_secret: str | None = Field(None, repr=False, validation_alias=env("WEBHOOK_SECRET", "webhook_secret"))
    webhook_listen: str = Field("0.0.0.0", validation_alias=env("WEBHOOK_LISTEN", "webhook_listen"))
    webhook_port: Port = Field(8443, validation_alias=env("WEBHOOK_PORT", "webhook_port"))
    # Telegram's pace for one bot (about 30 messages a second), shared by this process's sends
    # (answers, the desk, the outbox); the replica layout divides it among the bot processes.
    telegram_rate: Annotated[float, Field(gt=0, le=1000)] = Field(30.0, validation_alias=env("TELEGRAM_RATE", "telegram_rate"))
    broadcast_rate: Annotated[float, Field(gt=0, le=1000)] = Field(30.0, validation_alias=env("BROADCAST_RATE", "broadcast_rate"))
    broadcast_sender: Literal["bot", "separate"] = Field("bot", validation_alias=env("BROADCAST_SENDER", "broadcast_sender"))

    @field_validator("telegram_token")
    @classmethod
    def _token(cls, token: str | None) -> str | None:
        if token is not None and not TOKEN_RE.match(token):
            raise ValueError("does not look like a token from @BotFather (123456:ABC...)")
        return token

    @field_validator("telegram_base_url", "rasa_url", "action_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value) if value else value

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, secret: str | None) -> str | None:
        if secret is not None and not SECRET_RE.match(secret):
            raise ValueError("may only hold A-Z, a-z, 0-9, _ and -, 1 to 256 characters")
        if secret is not None and len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters long (got {len(secret)}): "
                             "anyone could guess a short one")
        return secret

    @field_validator("rasa_token")
    @classmethod
    def _rasa_token(cls, value: str) -> str:
        return long_secret(value)

    @model_validator(mode="after")
    def _bot_defaults(self):
        # Telegram only calls https; a Bot API server of one's own (TELEGRAM_BASE_URL) may call http.
        if self.webhook_url and not self.webhook_url.startswith("https://") and \
                self.telegram_base_url == DEFAULT_BASE_URL:
            raise ValueError("WEBHOOK_URL must be an https:// URL (Telegram only calls https)")
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("WEBHOOK_SECRET is required with WEBHOOK_URL (Telegram's secret token)")
        if not self.rasa_url:
            self.rasa_url = f"http://127.0.0.1:{self.rasa_port}"
        if not self.action_url:
            self.action_url = f"http://127.0.0.1:{self.action_port}"
        if not self.rasa_token:
            self.rasa_token = installation_secret("rasa_token")
        return self

    @property
    def local_chat(self) -> bool:
        """No Telegram token: the assistant runs with a local Bot API emulator and a terminal chat."""
        return self.telegram_token is None

    @property
    def run_sender(self) -> bool:
        """The bot sends broadcasts itself, unless BROADCAST_SENDER=separate runs `python -m bot sender`."""
        return self.broadcast_sender == "bot"


def load_settings(**values) -> Settings:
    """The bot's settings, read and checked whole (see crm.settings.read)."""
    return read(Settings, **values)
