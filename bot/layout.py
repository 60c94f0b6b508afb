"""The production layout on one machine (`python -m bot run --replicas K`): K bot processes in
webhook mode and M action servers, each set behind haproxy (deploy/haproxy.cfg), one Rasa server
with N Sanic workers (its conversations locked in Redis, its trackers in PostgreSQL:
endpoints.production.yml), one PostgreSQL CRM, one Redis. README "Replicas" shows the same
layout over several hosts.

Ports, from the settings: haproxy takes WEBHOOK_PORT (Telegram's calls) and ACTION_PORT (Rasa's
calls to the actions); bot i listens on WEBHOOK_PORT + i and action server i on ACTION_PORT + i
(i = 1..); Rasa on RASA_PORT.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.services import PYTHON, ServiceError, Services, service_environment
from bot.settings import Settings
from crm.settings import ROOT

HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
MAX_REPLICAS = 8  # servers deploy/haproxy.cfg names per back end
PRODUCTION_ENDPOINTS = "endpoints.production.yml"


@dataclass(frozen=True)
class Shape:
    bots: int = 2
    rasa_workers: int = 2
    action_servers: int = 2

    def problems(self) -> list[str]:
        found = []
        for name, value, top in (("--replicas", self.bots, MAX_REPLICAS), ("--action-servers", self.action_servers,
                                 MAX_REPLICAS), ("--rasa-workers", self.rasa_workers, 64)):
            if not 1 <= value <= top:
                found.append(f"{name} must be between 1 and {top} (got {value})")
        return found


def missing(settings: Settings, shape: Shape, env: dict | None = None) -> list[str]:
    """What the layout needs and is not there, each with how to get it."""
    env = service_environment() if env is None else env
    found = shape.problems()
    if make_url(settings.database_url).get_backend_name() != "postgresql":
        found.append("DATABASE_URL must be PostgreSQL (replicas share the CRM; SQLite is one process's)")
    if not settings.redis_url:
        found.append("REDIS_URL must be set (redis://127.0.0.1:6379/0): replicas lock each chat there")
    if not settings.rasa_db_host or not env.get("REDIS_HOST"):
        found.append("RASA_DB_HOST (and RASA_DB_USER...) and REDIS_HOST must be set: Rasa's workers share "
                     f"their trackers in PostgreSQL and their locks in Redis ({PRODUCTION_ENDPOINTS})")
    if shutil.which("haproxy") is None:
        found.append("haproxy is not installed (Debian: apt-get install haproxy; or `make replicas-setup`)")
    return found


class Layout:
    """Starts, watches and stops the processes of the layout. `webhook_url`: the public address
    Telegram calls (your TLS proxy in front of haproxy); by default haproxy's own, which only a
    Bot API server of one's own (or the emulator) can call."""

    def __init__(self, settings: Settings, model: Path, shape: Shape = Shape(), env: dict | None = None,
                 log_dir: Path | None = None, webhook_url: str | None = None, proxy_listen: str = "127.0.0.1"):
        self.settings = settings
        self.shape = shape
        self.proxy_listen = proxy_listen
        self.webhook_url = webhook_url or settings.webhook_url or \
            f"http://127.0.0.1:{settings.webhook_port}/telegram"
        self.webhook_secret = settings.webhook_secret or secrets.token_urlsafe(32)
        # endpoints.production.yml reads every value from the environment: the settings' own
        # defaults fill what is not set there.
        defaults = {"RASA_DB_PORT": str(settings.rasa_db_port), "RASA_DB_NAME": settings.rasa_db_name,
                    "RASA_DB_USER": settings.rasa_db_user or "", "RASA_DB_PASSWORD": settings.rasa_db_password,
                    "REDIS_PORT": "6379", "REDIS_DB": "0"}
        # Each Rasa worker and action server would otherwise use every core for TensorFlow's and
        # numpy's threads: N of them fight over the cores (measured on 2 cores, 2 workers: 285 ms
        # of Rasa CPU a message instead of 124, and fewer messages a second than 1 worker).
        threads = str(max(1, (os.cpu_count() or 1) // max(shape.rasa_workers, shape.action_servers)))
        defaults.update({"TF_INTRA_OP_PARALLELISM_THREADS": threads, "TF_INTER_OP_PARALLELISM_THREADS": threads,
                         "OMP_NUM_THREADS": threads})
        known = service_environment(env)
        self.services = Services(settings, model, endpoints=PRODUCTION_ENDPOINTS, log_dir=log_dir, env={
            **{name: value for name, value in defaults.items() if not known.get(name)}, **(env or {}),
            "SANIC_WORKERS": str(shape.rasa_workers)})

    @property
    def bot_ports(self) -> list[int]:
        return [self.settings.webhook_port + i for i in range(1, self.shape.bots + 1)]

    @property
    def action_ports(self) -> list[int]:
        return [self.settings.action_port + i for i in range(1, self.shape.action_servers + 1)]

    def check(self) -> None:
        problems = missing(self.settings, self.shape, self.services.env)
        if problems:
            raise ServiceError("the replica layout cannot start:\n  - " + "\n  - ".join(problems))

    def start(self, timeout: float = 240.0) -> None:
        self.check()
        for i, port in enumerate(self.action_ports, 1):
            self.services.start_actions(port=port, name=f"actions{i}")
        self.start_proxy()
        self.services.start_rasa()
        self.services.wait_ready(timeout)
        for i in range(1, self.shape.bots + 1):
            self.start_bot(i)
        self.wait_bots(timeout=60)

    def start_proxy(self) -> None:
        env = {**self.services.env, "PROXY_LISTEN": self.proxy_listen,
               "WEBHOOK_PORT": str(self.settings.webhook_port), "ACTION_PORT": str(self.settings.action_port)}
        env.update({f"BOT_PORT_{i}": str(port) for i, port in enumerate(self.bot_ports, 1)})
        env.update({f"ACTIONS_PORT_{i}": str(port) for i, port in enumerate(self.action_ports, 1)})
        self.services.spawn("haproxy", ["haproxy", "-db", "-f", str(HAPROXY_CONFIG)], env)

    def bot_env(self, i: int) -> dict:
        settings = self.settings
        return {
            **self.services.env,
            "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or "",
            "TELEGRAM_BOT_TOKEN": settings.telegram_token or "", "TELEGRAM_BASE_URL": settings.telegram_base_url,
            "RASA_URL": settings.rasa_url, "RASA_TOKEN": settings.rasa_token,
            "ACTION_SERVER_URL": settings.action_url, "ACTION_SERVER_TOKEN": settings.action_token,
            "WEBHOOK_URL": self.webhook_url, "WEBHOOK_SECRET": self.webhook_secret,
            "WEBHOOK_LISTEN": "127.0.0.1", "WEBHOOK_PORT": str(self.bot_ports[i - 1]),
            # Telegram's pace is the bot's, whatever the number of processes sending for it.
            "TELEGRAM_RATE": str(settings.telegram_rate / self.shape.bots),
            "BROADCAST_RATE": str(settings.broadcast_rate / self.shape.bots),
        }

    def start_bot(self, i: int) -> None:
        self.services.spawn(f"bot{i}", [str(PYTHON), "-m", "bot", "serve"], self.bot_env(i))
        self.services.health[f"bot{i}"] = f"http://127.0.0.1:{self.bot_ports[i - 1]}/healthz"

    def wait_bots(self, timeout: float = 60.0, which: list[int] | None = None) -> None:
        self.services.wait_ready(timeout, [f"bot{i}" for i in which or range(1, self.shape.bots + 1)])

    def kill(self, name: str) -> None:
        """Kill one process at once (SIGKILL), as a crash would: for the tests."""
        self.services.kill(name)

    def stop(self) -> None:
        self.services.stop()
