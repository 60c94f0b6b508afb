"""The settings every process shares, typed and checked whole by pydantic-settings: read once
from the environment (or a `.env` file at the repository root; the real environment wins).

Each entry point (the bot application, the action server, the command line) loads them once
and installs them with `install()`; code below reads `current()`, never the environment. A
wrong value stops start-up with a SettingError that names the variable.

bot/settings.py extends them with what only the bot process needs (Telegram, Rasa, webhook).
"""

from __future__ import annotations

import os
import secrets
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

from crm.i18n import languages

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
MIN_SECRET_LENGTH = 16

Port = Annotated[int, Field(gt=0, lt=65536)]
ClaimSeconds = Annotated[float, Field(ge=1, le=86400)]


class SettingError(ValueError):
    """A setting has a wrong value; the message names the setting."""


def private_var() -> Path:
    """var/ (databases, logs, secrets), readable by our own user only. Processes we start create
    files 0600 under it (the umask is set in `python -m bot`)."""
    VAR.mkdir(mode=0o700, exist_ok=True)
    os.chmod(VAR, 0o700)
    return VAR


def installation_secret(filename: str) -> str:
    """A secret shared by our processes when the environment gives none: generated once into
    var/<filename> (0600) so that every process of this installation agrees."""
    path = private_var() / filename
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(secrets.token_urlsafe(32))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def long_secret(value: str) -> str:
    """A shared secret given by the environment: refused when short enough to guess."""
    if value and len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters long (got {len(value)})")
    return value


def env(name: str, *others: str):
    """A field read from the environment variable `name` (the field's own name also works when
    the settings are built in code)."""
    return AliasChoices(name, *others)


class Settings(BaseSettings):
    """What the CRM, the actions and the command line need."""

    model_config = SettingsConfigDict(
        env_file=ROOT / ".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore",
        populate_by_name=True, str_strip_whitespace=True, validate_default=False,
    )

    database_url: str = Field("", repr=False, validation_alias=env("DATABASE_URL", "database_url"))
    staff_chat_id: int | None = Field(None, validation_alias=env("STAFF_CHAT_ID", "staff_chat_id"))
    staff_chat_language: str = Field("fr", validation_alias=env("STAFF_CHAT_LANGUAGE", "staff_chat_language"))
    company_profile: Path = Field(ROOT / "company.yml", validation_alias=env("COMPANY_PROFILE", "company_profile"))
    demo_data: bool = Field(True, validation_alias=env("DEMO_DATA", "demo_data"))
    # The managers' labelled examples as Rasa training data: the company's own, kept out of git.
    review_data: Path = Field(VAR / "review" / "labelled.yml", validation_alias=env("REVIEW_DATA", "review_data"))
    action_port: Port = Field(5055, validation_alias=env("ACTION_PORT", "action_port"))
    action_host: str = Field("127.0.0.1", validation_alias=env("ACTION_SERVER_HOST", "action_host"))
    action_token: str = Field("", repr=False, validation_alias=env("ACTION_SERVER_TOKEN", "action_token"))
    answer_claim_timeout: ClaimSeconds = Field(60, validation_alias=env("ANSWER_CLAIM_TIMEOUT", "answer_claim_timeout"))
    broadcast_claim_timeout: ClaimSeconds = Field(
        60, validation_alias=env("BROADCAST_CLAIM_TIMEOUT", "broadcast_claim_timeout"))
    outbox_claim_timeout: ClaimSeconds = Field(60, validation_alias=env("OUTBOX_CLAIM_TIMEOUT", "outbox_claim_timeout"))
    # Bot replicas share their chats' locks and say they are alive in Redis (bot/replicas.py);
    # unset: one bot process, locks in memory.
    redis_url: str | None = Field(None, repr=False, validation_alias=env("REDIS_URL", "redis_url"))
    # Rasa's tracker store, where endpoints.yml (a SQLite file) or endpoints.production.yml
    # (PostgreSQL, when RASA_DB_HOST is set) put it: a client's erasure and the retention job
    # delete conversations there too (crm/trackers.py).
    rasa_tracker_db: Path = Field(VAR / "rasa_tracker.db", validation_alias=env("RASA_TRACKER_DB", "rasa_tracker_db"))
    rasa_db_host: str | None = Field(None, validation_alias=env("RASA_DB_HOST", "rasa_db_host"))
    rasa_db_port: Port = Field(5432, validation_alias=env("RASA_DB_PORT", "rasa_db_port"))
    rasa_db_name: str = Field("rasa", validation_alias=env("RASA_DB_NAME", "rasa_db_name"))
    rasa_db_user: str | None = Field(None, validation_alias=env("RASA_DB_USER", "rasa_db_user"))
    rasa_db_password: str = Field("", repr=False, validation_alias=env("RASA_DB_PASSWORD", "rasa_db_password"))

    @field_validator("database_url")
    @classmethod
    def _database(cls, url: str) -> str:
        if url and not url.startswith(("sqlite", "postgresql")):
            raise ValueError(f"must start with sqlite:// or postgresql:// (got {url.split(':', 1)[0]!r})")
        return url

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, url: str | None) -> str | None:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must start with redis://, rediss:// or unix:// (got {url.split(':', 1)[0]!r})")
        return url or None

    @field_validator("staff_chat_id", mode="before")
    @classmethod
    def _staff_chat(cls, value):
        if value is None:
            return None
        text = str(value).strip()
        if not text.startswith("-100") or not text[1:].isdigit():
            raise ValueError(f"must be a supergroup id such as -1001234567890 (got {text!r})")
        return int(text)

    @field_validator("staff_chat_language")
    @classmethod
    def _staff_language(cls, language: str) -> str:
        if language not in languages():
            raise ValueError(f"must be one of {', '.join(languages())} (got {language!r})")
        return language

    @field_validator("action_token")
    @classmethod
    def _secret(cls, value: str) -> str:
        return long_secret(value)

    @model_validator(mode="after")
    def _defaults(self):
        if not self.database_url:
            self.database_url = f"sqlite:///{private_var() / 'crm.db'}"
        if not self.action_token:
            self.action_token = installation_secret("action_token")
        return self

    @property
    def staff_chat(self) -> tuple[int, str] | None:
        """The staff forum supergroup and the language of its messages, or None: then managers
        are notified in their private chats."""
        return (self.staff_chat_id, self.staff_chat_language) if self.staff_chat_id is not None else None

    @property
    def tracker_store_url(self) -> str:
        """Rasa's tracker store as a SQLAlchemy URL: PostgreSQL when RASA_DB_HOST is set, else
        the SQLite file RASA_TRACKER_DB."""
        if self.rasa_db_host:
            return URL.create("postgresql", username=self.rasa_db_user, password=self.rasa_db_password or None,
                              host=self.rasa_db_host, port=self.rasa_db_port,
                              database=self.rasa_db_name).render_as_string(hide_password=False)
        return f"sqlite:///{self.rasa_tracker_db}"

    def claim_timeout(self, kind: Literal["answer", "broadcast", "outbox"]) -> timedelta:
        """How long a claimed row may stay claimed before its claimer is held for dead."""
        return timedelta(seconds=getattr(self, f"{kind}_claim_timeout"))


def _variable(cls: type[BaseSettings], field: str) -> str:
    alias = cls.model_fields[field].validation_alias if field in cls.model_fields else None
    return alias.choices[0] if isinstance(alias, AliasChoices) else field.upper()


def read(cls: type[Settings] = Settings, **values) -> Settings:
    """Read and check the settings (the environment, then `.env`; `values` override both). Every
    problem is reported at once, each with the variable's name."""
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = _variable(cls, str(error["loc"][0])) if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            got = error.get("input")
            if error["type"] != "value_error" and isinstance(got, (str, int, float)):
                message = f"{message} (got {got!r})"
            problems.append(f"{name}: {message}" if name else message)
        raise SettingError("; ".join(problems)) from None


_lock = threading.Lock()
_current: Settings | None = None


def install(settings: Settings | None) -> Settings | None:
    """The settings this process runs with, loaded by its entry point (None: read them again at
    the next `current()`, as a test does after changing the environment)."""
    global _current
    with _lock:
        _current = settings
    return settings


def current() -> Settings:
    """The installed settings; read once from the environment when no entry point installed any
    (a library use, a test)."""
    global _current
    with _lock:
        if _current is None:
            _current = read()
        return _current
