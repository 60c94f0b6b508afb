"""Starts and stops the Rasa server and the action server(s) for `make run`, the replica layout
(bot/layout.py) and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from dotenv import dotenv_values

from bot.rasa_model import rasa_environment
from bot.settings import Settings
from crm.settings import ROOT, VAR, private_var

RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
PYTHON = ROOT / ".venv" / "bin" / "python"


class ServiceError(RuntimeError):
    pass


def service_environment(extra: dict | None = None) -> dict:
    """The environment the services start with. Rasa reads its stores from it (endpoints*.yml:
    RASA_DB_HOST, REDIS_HOST...): what `.env` sets reaches it too, the real environment winning,
    as for our settings."""
    dotenv = {k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None}
    return {**dotenv, **os.environ, **(extra or {})}


class Services:
    """The two Rasa processes, each in its own process group, logging under var/logs/."""

    def __init__(self, settings: Settings, model: Path, endpoints: str = "endpoints.yml",
                 env: dict | None = None, log_dir: Path | None = None):
        self.settings = settings
        self.model = model
        self.endpoints = endpoints
        self.env = service_environment(env)
        self.log_dir = log_dir or VAR / "logs"
        self.processes: dict[str, subprocess.Popen] = {}
        self.health: dict[str, str] = {}  # process name -> the URL that answers 200 once it is ready

    def spawn(self, name: str, command: list[str], env: dict) -> None:
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.log_dir / f"{name}.log"
        log = open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        os.chmod(path, 0o600)  # ids and error kinds, no message text: ours alone all the same
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()

    def start_actions(self, port: int | None = None, name: str = "actions") -> None:
        """Our action server (actions/server.py): rasa-sdk behind the shared secret, on
        ACTION_SERVER_HOST (127.0.0.1 unless a setting opens it), on ACTION_PORT or `port`."""
        env = {**self.env, "DATABASE_URL": self.settings.database_url, "PYTHONPATH": str(ROOT),
               "ACTION_SERVER_TOKEN": self.settings.action_token}
        port = port or self.settings.action_port
        self.spawn(name, [str(PYTHON), "-m", "actions.server", "--port", str(port)], env)
        self.health[name] = f"http://127.0.0.1:{port}/health" if port != self.settings.action_port else \
            f"{self.settings.action_url}/health"

    def start_rasa(self) -> None:
        private_var()
        env = rasa_environment({
            **self.env,
            "RASA_TRACKER_DB": str(self.settings.rasa_tracker_db),  # where erasure and retention find it
            "ACTION_ENDPOINT_URL": f"{self.settings.action_url}/webhook",
            "ACTION_SERVER_TOKEN": self.settings.action_token,  # endpoints.yml sends it as a header
            "RASA_TOKEN": self.settings.rasa_token,  # read by tools/rasa_server.py, never on the command line
        })
        self.spawn("rasa", [
            str(RASA_PYTHON), str(ROOT / "tools" / "rasa_server.py"), "run", "--enable-api",
            "--interface", self.settings.rasa_host, "--port", str(self.settings.rasa_port),
            "--model", str(self.model), "--endpoints", self.endpoints,
            "--credentials", "credentials.yml", "--cors", "[]",
        ], env)
        self.health["rasa"] = f"{self.settings.rasa_url}/status?token={self.settings.rasa_token}"

    def start(self, timeout: float = 180.0) -> None:
        self.start_actions()
        self.start_rasa()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 180.0, names: list[str] | None = None) -> None:
        """Until each process (or each of `names`) answers its health check; a process that
        stopped, or one not ready in time, is a ServiceError naming its log."""
        deadline = time.monotonic() + timeout
        checks = self.health
        pending = {name for name in names or checks if name in checks and name in self.processes}
        while pending:
            for name in sorted(pending):
                process = self.processes[name]
                if process.poll() is not None:
                    raise ServiceError(
                        f"{name} stopped at start-up (exit code {process.returncode}); "
                        f"see {self.log_dir / (name + '.log')}"
                    )
                try:
                    response = httpx.get(checks[name], timeout=2)
                    if response.status_code == 200 and (name != "rasa" or response.json().get("model_file")):
                        pending.discard(name)
                except (httpx.HTTPError, ValueError):
                    pass
            if pending and time.monotonic() > deadline:
                raise ServiceError(f"{', '.join(sorted(pending))} not ready after {timeout:.0f}s; "
                                   f"see {self.log_dir}")
            if pending:
                time.sleep(0.5)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash: nothing of the process's own clean-up runs."""
        process = self.processes.pop(name, None)
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self, name: str | None = None) -> None:
        names = [name] if name else list(self.processes)
        for n in names:
            process = self.processes.get(n)
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for n in names:
            process = self.processes.pop(n, None)
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
