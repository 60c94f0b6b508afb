"""Settings shared by every process: read from the environment, or a `.env` file when present."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dotenv import load_dotenv

from crm.i18n import languages

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


class SettingError(ValueError):
    """A setting has a wrong value; the message names the setting."""


def load_env() -> None:
    """Read `.env` at the repository root; the real environment wins over the file."""
    load_dotenv(ROOT / ".env", override=False)


MIN_SECRET_LENGTH = 16


def private_var() -> Path:
    """var/ (databases, logs, secrets), readable by our own user only. Processes we start create
    files 0600 under it (the umask is set in `python -m bot`)."""
    VAR.mkdir(mode=0o700, exist_ok=True)
    os.chmod(VAR, 0o700)
    return VAR


def secret_setting(name: str, filename: str) -> str:
    """A shared secret between our processes: the environment's, or else one per installation,
    generated once into var/<filename> (0600) so that every process agrees. A secret shorter than
    MIN_SECRET_LENGTH characters is refused."""
    value = os.environ.get(name, "").strip()
    if value:
        if len(value) < MIN_SECRET_LENGTH:
            raise SettingError(f"{name} must be at least {MIN_SECRET_LENGTH} characters long (got {len(value)})")
        return value
    path = private_var() / filename
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(secrets.token_urlsafe(32))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def database_url() -> str:
    load_env()
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{private_var() / 'crm.db'}"
    if not url.startswith(("sqlite", "postgresql")):
        raise SettingError(
            f"DATABASE_URL must start with sqlite:// or postgresql:// (got {url.split(':', 1)[0]!r})"
        )
    return url


def staff_chat() -> tuple[int, str] | None:
    """The staff forum supergroup (STAFF_CHAT_ID) and the language of its messages
    (STAFF_CHAT_LANGUAGE), or None: then managers are notified in their private chats."""
    load_env()
    value = os.environ.get("STAFF_CHAT_ID", "").strip()
    if not value:
        return None
    if not value.startswith("-100") or not value[1:].isdigit():
        raise SettingError(f"STAFF_CHAT_ID must be a supergroup id such as -1001234567890 (got {value!r})")
    language = os.environ.get("STAFF_CHAT_LANGUAGE", "fr").strip() or "fr"
    if language not in languages():
        raise SettingError(f"STAFF_CHAT_LANGUAGE must be one of {', '.join(languages())} (got {language!r})")
    return int(value), language
