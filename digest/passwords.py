"""Editors' passwords: what a new one must be, and Argon2id hashes made and checked with
argon2-cffi (RFC 9106).

Parameters follow OWASP's Password Storage Cheat Sheet for Argon2id (19 MiB of memory, two
passes, one lane); a hash records its own parameters, so hashes made with other ones still
verify and :func:`needs_rehash` says when to store a new one. Length rules follow NIST SP
800-63B-4 section 3.1.1.2 (a password that is the only factor has at least 15 characters; no
composition rules; long passphrases allowed).
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from digest.errors import DigestError

__all__ = [
    "DEFAULT_HASHER",
    "MAX_LENGTH",
    "MIN_LENGTH",
    "InvalidPasswordError",
    "check_new_password",
    "hash_password",
    "needs_rehash",
    "verify_password",
    "waste_time",
]

MIN_LENGTH = 15
MAX_LENGTH = 1024  # hashing is deliberately slow; a megabyte "password" must not be
DEFAULT_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class InvalidPasswordError(DigestError, ValueError):
    """Raised when a new password is too short, too long, or the editor's own name."""


def check_new_password(password: str, name: str) -> None:
    """Accept ``password`` for editor ``name``, or say in one sentence why not.

    :raises InvalidPasswordError: fewer than :data:`MIN_LENGTH` or more than
        :data:`MAX_LENGTH` characters, or the name itself.
    """
    if len(password) < MIN_LENGTH:
        raise InvalidPasswordError(f"The password has {len(password)} characters; use at "
                                   f"least {MIN_LENGTH} (a few unrelated words make a good one).")
    if len(password) > MAX_LENGTH:
        raise InvalidPasswordError(f"The password is longer than {MAX_LENGTH} characters; "
                                   "use a shorter one.")
    if password.strip().casefold() == name.strip().casefold():
        raise InvalidPasswordError("The password is the editor's name; choose another.")


def hash_password(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """The Argon2id PHC string (``$argon2id$v=19$m=...``) of ``password``."""
    return hasher.hash(password)


def verify_password(stored_hash: str, password: str,
                    hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    """True when ``password`` matches ``stored_hash``; False for a wrong password, an
    over-long one, or a hash that cannot be read."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    """True when ``stored_hash`` was made with other parameters than ``hasher``'s."""
    try:
        return hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("not a password anyone has")


def waste_time(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> None:
    """Spend what checking a password costs, for a name with no editor, so the time a
    sign-in takes does not tell whether the name exists."""
    verify_password(_dummy_hash(hasher), password, hasher)
