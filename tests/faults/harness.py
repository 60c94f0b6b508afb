"""What the fault cases share: the bot as a real process (`python -m bot serve`), clients who
write and wait for their answers like people do, and the count of what was received, answered,
lost and doubled."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bot.emulator import BotApiEmulator, User
from crm.settings import ROOT
from tests.harness import TOKEN, StubRasa


def echo(sender, message, metadata):
    return [{"recipient_id": sender, "text": f"echo: {message}"}]


class BotProcess:
    """`python -m bot serve` against the emulator, a Rasa URL and a database, killable at will."""

    def __init__(self, emulator: BotApiEmulator, database_url: str, rasa_url: str, log: Path, **env):
        self.log = log
        self.env = {
            **os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": emulator.base_url,
            "DATABASE_URL": database_url, "RASA_URL": rasa_url, "RASA_TOKEN": "a-test-token-of-24-chars",
            "ACTION_SERVER_TOKEN": "an-action-token-of-24-ch", "RASA_TIMEOUT": "5",
            # Claims of a killed process go stale quickly here (60 s in production).
            "ANSWER_CLAIM_TIMEOUT": "2", "OUTBOX_CLAIM_TIMEOUT": "2", "BROADCAST_CLAIM_TIMEOUT": "2",
            "BROADCAST_RATE": "200", **env,
        }
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> "BotProcess":
        self.starts += 1
        out = open(self.log, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=self.env,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        return self

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Tally:
    """One case's numbers. Each client message is unique; its answer quotes it."""

    case: str
    sent: list[str] = field(default_factory=list)
    answers: Counter = field(default_factory=Counter)

    def row(self) -> dict:
        answered = sum(1 for m in self.sent if self.answers[m] >= 1)
        return {"case": self.case, "received": len(self.sent), "answered": answered,
                "lost": len(self.sent) - answered, "doubled": sum(1 for m in self.sent if self.answers[m] > 1)}


def count_answers(emulator: BotApiEmulator, users: list[User], tally: Tally, prefix: str = "echo: ") -> None:
    """How many times each message's own answer reached its client."""
    tally.answers.clear()
    for user in users:
        for sent in emulator.messages_to(user.id):
            text = sent.text or ""
            if text.startswith(prefix):
                tally.answers[text[len(prefix):]] += 1


def converse(emulator: BotApiEmulator, user: User, messages: list[str], tally: Tally, stop: threading.Event,
             patience: float = 30.0) -> None:
    """A client writing `messages` one by one, each after the answer to the one before (or after
    `patience` seconds without it: people write again)."""
    for text in messages:
        if stop.is_set():
            return
        tally.sent.append(text)
        emulator.user_says(user, text)
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline and not stop.is_set():
            if any((s.text or "") == f"echo: {text}" for s in emulator.messages_to(user.id)):
                break
            time.sleep(0.05)


def wait_until(condition, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


class TcpProxy:
    """A TCP relay in front of a server, whose connections can be refused and cut at will: the
    database 'unreachable' for a few seconds without stopping the server other tests use."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # refused while down
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _cut(source)
            _cut(sink)

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        self.up.clear()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for client, server in pairs:
            _cut(client)
            _cut(server)

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.down()
        self.listener.close()


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


__all__ = ["BotProcess", "StubRasa", "Tally", "TcpProxy", "converse", "count_answers", "echo", "wait_until"]
