"""The user store: accounts, Argon2 hashes, one account per username even under a race."""

import threading
import uuid

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bookstore.domain.errors import AlreadyExists, NotFound, Unauthenticated
from bookstore.services.user.passwords import Passwords, default_hasher
from bookstore.services.user.store import WRONG_CREDENTIALS, UserRow, UserStore

NOW = 1_700_000_000


def cheap_hasher() -> PasswordHasher:
    # The smallest parameters Argon2 accepts: the tests check behaviour, not cost.
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class CountingHasher(PasswordHasher):
    """A cheap hasher that records which hashes ``verify`` was asked to check."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str] = []

    # The parameter names match argon2's, so keyword calls reach this override too.
    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        return super().verify(hash, password)


@pytest.fixture
def store(sqlite_engine: Engine) -> UserStore:
    return UserStore(sqlite_engine, Passwords(cheap_hasher()), clock=lambda: NOW)


def stored_hash(engine: Engine, username: str) -> str:
    with Session(engine) as session:
        return session.execute(select(UserRow.password_hash).where(UserRow.username == username)).scalar_one()


def test_register_returns_a_user_with_a_uuid_and_the_creation_time(store: UserStore) -> None:
    user = store.register("alice", "correct horse")
    assert str(uuid.UUID(user.user_id)) == user.user_id
    assert (user.username, user.created_at_unix) == ("alice", NOW)


def test_register_stores_an_argon2id_hash_and_never_the_password(
    store: UserStore, sqlite_engine: Engine
) -> None:
    store.register("alice", "correct horse")
    encoded = stored_hash(sqlite_engine, "alice")
    assert encoded.startswith("$argon2id$")
    assert "correct horse" not in encoded


def test_two_users_with_one_password_get_different_hashes(store: UserStore, sqlite_engine: Engine) -> None:
    store.register("alice", "same password")
    store.register("bob", "same password")
    assert stored_hash(sqlite_engine, "alice") != stored_hash(sqlite_engine, "bob")


def test_register_rejects_a_taken_username_naming_the_field(store: UserStore) -> None:
    store.register("alice", "correct horse")
    with pytest.raises(AlreadyExists) as error:
        store.register("alice", "another password")
    assert error.value.field == "username"


def test_concurrent_registrations_of_one_username_create_one_account_and_already_exists_for_the_rest(
    store: UserStore,
) -> None:
    contenders = 8
    start = threading.Barrier(contenders)
    outcomes: list[str] = []

    def register() -> None:
        start.wait()
        try:
            store.register("alice", "correct horse")
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("already exists")

    threads = [threading.Thread(target=register) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already exists"] * (contenders - 1) + ["created"]


def test_authenticate_returns_the_user_for_the_right_password(store: UserStore) -> None:
    alice = store.register("alice", "correct horse")
    assert store.authenticate("alice", "correct horse") == alice


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(store: UserStore) -> None:
    store.register("alice", "correct horse")
    with pytest.raises(Unauthenticated) as wrong_password:
        store.authenticate("alice", "battery staple")
    with pytest.raises(Unauthenticated) as unknown_user:
        store.authenticate("mallory", "correct horse")
    assert str(wrong_password.value) == str(unknown_user.value) == WRONG_CREDENTIALS


def test_an_unknown_user_still_costs_one_argon2_verification(sqlite_engine: Engine) -> None:
    hasher = CountingHasher()
    store = UserStore(sqlite_engine, Passwords(hasher))
    with pytest.raises(Unauthenticated):
        store.authenticate("mallory", "correct horse")
    assert len(hasher.verified) == 1
    assert hasher.verified[0].startswith("$argon2id$")


def test_a_login_upgrades_a_hash_made_with_older_parameters(sqlite_engine: Engine) -> None:
    old = UserStore(sqlite_engine, Passwords(cheap_hasher()))
    old.register("alice", "correct horse")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    new = UserStore(sqlite_engine, Passwords(stronger))
    new.authenticate("alice", "correct horse")
    upgraded = stored_hash(sqlite_engine, "alice")
    assert not stronger.check_needs_rehash(upgraded)
    assert new.authenticate("alice", "correct horse").username == "alice"


def test_get_returns_a_registered_user(store: UserStore) -> None:
    alice = store.register("alice", "correct horse")
    assert store.get(alice.user_id) == alice


def test_get_of_an_unknown_user_is_not_found_naming_user_id(store: UserStore) -> None:
    with pytest.raises(NotFound) as error:
        store.get(str(uuid.uuid4()))
    assert error.value.field == "user_id"


def test_the_service_hashes_with_argon2id_at_the_owasp_parameters() -> None:
    assert default_hasher().hash("correct horse").startswith("$argon2id$v=19$m=19456,t=2,p=1$")
