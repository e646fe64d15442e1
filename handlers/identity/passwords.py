"""Passwords: argon2id hashes, verified off the event loop, with a dummy hash for unknown users.

argon2-cffi's defaults (RFC 9106's low-memory profile: t=3, m=64 MiB, p=4)
cost about 50 ms of one core: far too long for the event loop that heartbeats
to Kafka, so :class:`PasswordHasher` runs them in a small thread pool of its
own (two at a time: a flood of sign-ins queues there, and the login rate limit
stops it early).  A sign-in for a username that does not exist verifies the
password against a dummy hash, so that the answer's timing does not tell
whether the user exists.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

import argon2

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
_HASHER = argon2.PasswordHasher()  # argon2id
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))


def password_problem(password: object) -> str | None:
    """Why a new password is refused, or ``None``."""
    if not isinstance(password, str):
        return "must be a string"
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return f"must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
    return None


def new_password() -> str:
    """A one-time password to print (about 95 bits)."""
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; ``None`` (no such user) costs the same and is False."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


class PasswordHasher:
    """Hash and verify in threads, not on the loop."""

    def __init__(self, threads: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="keydesk-argon2")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, hash_password, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._pool, verify_password, stored, password)
