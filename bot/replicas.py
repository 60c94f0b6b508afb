"""Bot processes side by side: one conversation handled at a time, and who is alive.

A chat's lock is held while one of its updates is handled (desk routing, Rasa, the answers), and
while a job sends to that chat. In one process an asyncio.Lock per chat does it. With replicas
(REDIS_URL set), the lock is also taken in Redis, so that two bot processes never handle the
same client at once: redis-py's Lock, with a lease that a keeper task renews while the holder
lives; a process killed while holding it frees the chat when the lease runs out.

A lock alone does not keep a client's messages in order across processes (whoever asks first
gets it); bot/app.py does that: whoever holds a chat's lock handles the chat's updates in the
order of their update ids (crm.inbox.pending_through).

Within one task the lock is re-entrant: the application takes it around a whole update and the
handlers take it again for the same chat without waiting for themselves.

Each process also says it is alive (a key in Redis renewed every few seconds): the updates a dead
process had written down and not finished are taken over by a live one (crm.inbox.take_over).
Without Redis there is one process, and at start every unfinished update is a previous run's.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import socket
import time
import weakref
from contextlib import asynccontextmanager
from typing import AsyncIterator, Hashable

log = logging.getLogger(__name__)

PREFIX = "assistant:chat:"
ALIVE_PREFIX = "assistant:replica:"
LEASE = 10.0  # seconds a killed holder keeps a chat locked; renewed every third of it
# Nothing a holder does takes this long (Rasa's timeout, a few sends): a holder still there after
# it is wedged, and stops renewing; a waiter gives up after it and goes on with its local lock.
MAX_HOLD = 120.0
HEARTBEAT = 5.0  # seconds between two "alive" of a process; dead after three missed
WARN_EVERY = 60.0


def lock_name(key: Hashable) -> str:
    return ":".join(map(str, key)) if isinstance(key, tuple) else str(key)


class Replicas:
    def __init__(self, redis_url: str | None = None, lease: float = LEASE):
        self.me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[-80:]
        # Each hold's token in Redis: this process and a count, unique everywhere (redis-py would
        # draw a uuid1, a call to libuuid's daemon socket at every message).
        self._holds = itertools.count(1)
        self.lease = lease
        self._local: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._owners: dict[str, asyncio.Task] = {}
        self._alone: set[str] = set()  # chats whose lock this process holds in Redis (or without Redis)
        self._redis = None
        self._redis_url = redis_url
        self._warned_at = 0.0
        self.unshared = 0  # holds taken in this process only because Redis was unreachable

    @property
    def shared(self) -> bool:
        return self._redis_url is not None

    def _client(self):
        if self._redis is None:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(self._redis_url, socket_connect_timeout=2, socket_timeout=5)
        return self._redis

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        name = lock_name(key)
        task = asyncio.current_task()
        if self._owners.get(name) is task:  # the same update, a handler taking it again
            yield
            return
        local = self._local.get(name)
        if local is None:
            local = self._local[name] = asyncio.Lock()
        async with local:
            self._owners[name] = task
            try:
                async with self._shared(name):
                    yield
            finally:
                self._owners.pop(name, None)

    def exclusive(self, key: Hashable) -> bool:
        """Whether the current task holds this chat's lock for every bot process: then nothing of
        the chat is being handled anywhere else, and what a process recorded for it and did not
        finish is orphaned. False without Redis (an old process still stopping may be on it) and
        when Redis was unreachable as the lock was taken."""
        name = lock_name(key)
        return self._owners.get(name) is asyncio.current_task() and name in self._alone

    @asynccontextmanager
    async def _shared(self, name: str) -> AsyncIterator[None]:
        if self._redis_url is None:
            yield
            return
        from redis.exceptions import LockError, RedisError

        lock = self._client().lock(PREFIX + name, timeout=self.lease, sleep=0.01, thread_local=False)
        try:
            if not await lock.acquire(blocking_timeout=MAX_HOLD, token=f"{self.me}:{next(self._holds)}"):
                log.error("chat %s: its lock was held over %.0f s: going on without it", name, MAX_HOLD)
                self.unshared += 1
                lock = None
        except RedisError as exc:
            lock = None
            self._unreachable(exc)
        if lock is None:  # Redis is down: handled in this process's order only, never dropped
            yield
            return
        released = asyncio.Event()
        keeper: list[asyncio.Task] = []
        # Most holds end well within a lease: the keeper starts only for one that lasts.
        timer = asyncio.get_running_loop().call_later(
            self.lease / 3, lambda: keeper.append(asyncio.create_task(self._keep(lock, name, released))))
        self._alone.add(name)
        try:
            yield
        finally:
            self._alone.discard(name)
            timer.cancel()
            # Told to stop, never cancelled mid-command: a cancellation landing inside redis-py's
            # reacquire() could be swallowed there, the keeper renewing for ever while this
            # waited on it (seen under load: a chat locked for good). Waited on for a lease at most.
            released.set()
            if keeper:
                await asyncio.wait(keeper, timeout=self.lease)
                if not keeper[0].done():
                    keeper[0].cancel()
            try:
                await lock.release()
            except (LockError, RedisError) as exc:  # expired (held past its lease) or Redis gone
                log.warning("chat %s: its lock could not be released (%s)", name, type(exc).__name__)

    async def _keep(self, lock, name: str, released: asyncio.Event) -> None:
        """Renews the lease every third of it, from a third of it after the lock was taken."""
        from redis.exceptions import LockError, RedisError

        deadline = time.monotonic() + MAX_HOLD - self.lease / 3
        while time.monotonic() < deadline:
            try:
                await lock.reacquire()
            except (LockError, RedisError) as exc:
                log.error("chat %s: its lock could not be renewed (%s): another process may take the chat",
                          name, type(exc).__name__)
            try:
                await asyncio.wait_for(released.wait(), timeout=self.lease / 3)
                return
            except asyncio.TimeoutError:
                pass
        log.error("chat %s: held over %.0f s, its lock is left to expire", name, MAX_HOLD)

    def _unreachable(self, exc: Exception) -> None:
        self.unshared += 1
        now = time.monotonic()
        if now - self._warned_at > WARN_EVERY:
            self._warned_at = now
            log.warning("Redis is unreachable (%s): chats are locked in this process only until it is back",
                        type(exc).__name__)

    async def beat(self) -> None:
        """This process is alive for the next three heartbeats."""
        if self._redis_url is None:
            return
        from redis.exceptions import RedisError

        try:
            await self._client().set(ALIVE_PREFIX + self.me, "1", ex=int(HEARTBEAT * 3))
        except RedisError as exc:
            self._unreachable(exc)

    async def dead(self, owners: list[str | None]) -> list[str | None]:
        """Which of these processes are dead (None: an update no process owns). Without Redis
        there is no other process: every other owner is a previous run. With Redis unreachable,
        none is held for dead (better late than handled twice)."""
        others = [owner for owner in owners if owner != self.me]
        if self._redis_url is None:
            return others
        from redis.exceptions import RedisError

        named = [owner for owner in others if owner is not None]
        try:
            found = await self._client().mget([ALIVE_PREFIX + owner for owner in named]) if named else []
        except RedisError as exc:
            self._unreachable(exc)
            return []
        return [owner for owner, value in zip(named, found) if value is None] + (
            [None] if None in others else [])

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
