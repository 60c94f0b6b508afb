"""Settings shared by every process: read from the environment, or a `.env` file when present."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


class SettingError(ValueError):
    """A setting has a wrong value; the message names the setting."""


def load_env() -> None:
    """Read `.env` at the repository root; the real environment wins over the file."""
    load_dotenv(ROOT / ".env", override=False)


def database_url() -> str:
    load_env()
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        VAR.mkdir(exist_ok=True)
        return f"sqlite:///{VAR / 'crm.db'}"
    if not url.startswith(("sqlite", "postgresql")):
        raise SettingError(
            f"DATABASE_URL must start with sqlite:// or postgresql:// (got {url.split(':', 1)[0]!r})"
        )
    return url
