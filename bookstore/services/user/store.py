"""The user service's database: one row per account, the username unique.

Registration does not ask "is this name free?" before inserting. Between that question and
the insert another replica can take the name, so the check would only narrow the race, not
close it. The unique key on ``username`` is the one guard that holds under concurrency: we
insert, and a duplicate comes back from the database as an ``IntegrityError``, which
becomes ``AlreadyExists``. The same pattern serves any "create if absent" on any database.

The password hash is computed before the transaction opens: a KDF takes tens of
milliseconds, and on SQLite every write transaction holds the one write lock
(``BEGIN IMMEDIATE``), so hashing inside it would make registrations queue behind each other.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from sqlalchemy import BigInteger, Engine, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bookstore.domain.errors import AlreadyExists, NotFound, Unauthenticated
from bookstore.domain.models import User
from bookstore.platform.database import initialize, session_factory
from bookstore.services.user.passwords import Passwords

# One message for an unknown username and for a wrong password: telling them apart would
# let anyone find out which usernames exist.
WRONG_CREDENTIALS = "username or password is wrong"


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    # An encoded Argon2id hash is about 100 characters; leave room for stronger parameters.
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at_unix: Mapped[int] = mapped_column(BigInteger)

    def to_domain(self) -> User:
        return User(user_id=self.user_id, username=self.username, created_at_unix=self.created_at_unix)


class UserStore:
    """Accounts. Callers pass usernames already normalised (see ``servicer.normalize_username``)."""

    def __init__(
        self,
        engine: Engine,
        passwords: Passwords | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        initialize(engine, Base.metadata)
        self._sessions = session_factory(engine)
        self._passwords = passwords or Passwords()
        self._clock = clock

    def register(self, username: str, password: str) -> User:
        """Create an account; ``AlreadyExists`` naming ``username`` if the name is taken."""
        row = UserRow(
            user_id=str(uuid.uuid4()),
            username=username,
            password_hash=self._passwords.hash(password),
            created_at_unix=int(self._clock()),
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            # The unique key refused the name: taken before, or by a concurrent registration.
            raise AlreadyExists(f"{username!r} is taken", field="username") from None
        return row.to_domain()

    def authenticate(self, username: str, password: str) -> User:
        """The user whose password this is; ``Unauthenticated`` otherwise, with one message."""
        with self._sessions() as session:
            row = session.execute(select(UserRow).where(UserRow.username == username)).scalar_one_or_none()
        # Verify even when the user is unknown (against a dummy hash): no timing difference.
        if not self._passwords.verify(row.password_hash if row else None, password) or row is None:
            raise Unauthenticated(WRONG_CREDENTIALS)
        if self._passwords.needs_rehash(row.password_hash):
            self._upgrade_hash(row, password)
        return row.to_domain()

    def get(self, user_id: str) -> User:
        with self._sessions() as session:
            row = session.get(UserRow, user_id)
            if row is None:
                raise NotFound(f"no user with id {user_id}", field="user_id")
            return row.to_domain()

    def _upgrade_hash(self, row: UserRow, password: str) -> None:
        """Re-hash with the current parameters; only the old hash is replaced, so a race is harmless."""
        new_hash = self._passwords.hash(password)
        with self._sessions.begin() as session:
            session.execute(
                update(UserRow)
                .where(UserRow.user_id == row.user_id, UserRow.password_hash == row.password_hash)
                .values(password_hash=new_hash)
            )
