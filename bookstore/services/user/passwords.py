"""Password storage with Argon2id, and a login check that does not leak which usernames exist.

What: ``Passwords.hash`` turns a password into an encoded Argon2id hash (algorithm, cost
parameters, a random salt and the digest in one string, so old hashes keep verifying after
the parameters change). ``Passwords.verify`` checks a password against such a hash.

Why a slow, memory-hard KDF: the hash is the last line of defence once a database leaks.
A random salt per password defeats precomputed tables; the cost parameters make each guess
expensive on GPUs and ASICs as well as on CPUs.

The parameters: argon2-cffi's defaults (RFC 9106 "low memory" profile: 64 MiB, 3 passes,
4 lanes) are a fine choice for a single web server. This course runs several replicas with
16 worker threads each on a laptop, where 16 logins at once would claim 1 GiB. We use the
OWASP Password Storage Cheat Sheet's first Argon2id configuration instead (19 MiB, 2 passes,
1 lane): a documented minimum that keeps attacks expensive, several times cheaper than the
defaults (tens of milliseconds per check on an idle core; time ``verify`` on your machine).
Raising them later is safe: ``needs_rehash`` tells the store to upgrade a hash at the next
successful login.

The timing oracle: if login answered "wrong" instantly for an unknown username but only
after a 30 ms hash for a known one, a stopwatch would reveal which usernames exist. So an
unknown username is verified against a dummy hash made with the same parameters, and both
cases return the same answer after the same work.

When not to: never for API keys or tokens with 128+ bits of randomness; those cannot be
guessed, so a fast hash (SHA-256) is enough and a KDF only burns CPU.
"""

from __future__ import annotations

import logging
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger(__name__)

# OWASP Password Storage Cheat Sheet, Argon2id option 1: m=19 MiB, t=2, p=1.
MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1


def default_hasher() -> PasswordHasher:
    """The Argon2id hasher the service uses (parameters explained in the module docstring)."""
    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)


class Passwords:
    """Hash and verify passwords with one ``PasswordHasher``; tests pass a cheap one."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or default_hasher()
        # Made with the same hasher, so verifying against it costs what a real check costs.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, encoded_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; ``None`` (no such user) does the same work and says False."""
        try:
            self._hasher.verify(encoded_hash or self._dummy_hash, password)
        except InvalidHashError:
            log.error("a stored password hash is not a valid Argon2 hash")
            return False
        except VerificationError:
            return False
        return encoded_hash is not None

    def needs_rehash(self, encoded_hash: str) -> bool:
        """True if ``encoded_hash`` was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(encoded_hash)
