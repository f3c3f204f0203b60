import jwt
import pytest

from bookstore.domain.errors import Unauthenticated
from bookstore.platform.channels import multi_address_target
from bookstore.platform.settings import DEV_JWT_SECRET, Settings
from bookstore.platform.tokens import ISSUER, issue_token, verify_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_settings_read_peers_and_a_database_template_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "BOOKSTORE_SERVICE": "order",
            "BOOKSTORE_PORT": "7001",
            "BOOKSTORE_INVENTORY_TARGET": "ipv4:127.0.0.1:1,127.0.0.1:2",
            "BOOKSTORE_DB_URL": "mysql+pymysql://root@127.0.0.1:3306/shop_{service}",
        }
    )
    assert settings.port == 7001
    assert settings.target("inventory") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert settings.database_url() == "mysql+pymysql://root@127.0.0.1:3306/shop_order"


def test_the_saga_deadline_and_the_crash_point_come_from_the_environment() -> None:
    assert (Settings.from_env({}).saga_deadline_s, Settings.from_env({}).crash_at) == (5.0, "")
    settings = Settings.from_env({"BOOKSTORE_SAGA_DEADLINE_S": "1.5", "BOOKSTORE_CRASH_AT": " after:pay "})
    assert (settings.saga_deadline_s, settings.crash_at) == (1.5, "after:pay")


def test_a_missing_peer_address_is_an_error_naming_the_variable() -> None:
    with pytest.raises(RuntimeError, match="BOOKSTORE_PAYMENT_TARGET"):
        Settings.from_env({}).target("payment")


def test_the_default_database_is_one_sqlite_file_per_service_in_the_work_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env({"BOOKSTORE_WORK_DIR": str(tmp_path)})
    assert settings.database_url("catalog") == f"sqlite:///{tmp_path.resolve()}/catalog.db"


def test_a_multi_address_target_lists_every_replica() -> None:
    assert multi_address_target(["127.0.0.1:1", "127.0.0.1:2"]) == "ipv4:127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(ValueError):
        multi_address_target([])


def test_a_token_round_trips_its_user() -> None:
    token, expires = issue_token("u-1", "ada", secret=SECRET, ttl_s=60, now=1000)
    claims = verify_token(token, secret=SECRET, now=1010)
    assert (claims.user_id, claims.username, claims.expires_at_unix) == ("u-1", "ada", 1060)
    assert expires == 1060


def test_an_expired_token_is_refused() -> None:
    token, _ = issue_token("u-1", "ada", secret=SECRET, ttl_s=60, now=1000)
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(token, secret=SECRET, now=1060)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token, _ = issue_token("u-1", "ada", secret="another-secret-of-sufficient-length!!", ttl_s=60)
    with pytest.raises(Unauthenticated, match="invalid"):
        verify_token(token, secret=SECRET)


def test_an_unsigned_alg_none_token_is_refused() -> None:
    forged = jwt.encode({"sub": "u-1", "exp": 4_000_000_000, "iat": 1, "iss": ISSUER}, None, algorithm="none")
    with pytest.raises(Unauthenticated):
        verify_token(forged, secret=SECRET)


def test_garbage_is_not_a_token() -> None:
    with pytest.raises(Unauthenticated):
        verify_token("not.a.token", secret=SECRET)


def test_an_unset_jwt_secret_falls_back_to_the_development_key_and_says_so_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="bookstore.platform.settings"):
        fallback = Settings.from_env({})
        assert caplog.text == "", "reading settings alone must not warn: most processes never use the key"
        assert fallback.jwt_secret == DEV_JWT_SECRET
        fallback.warn_if_development_secret()
    assert "BOOKSTORE_JWT_SECRET is not set" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="bookstore.platform.settings"):
        Settings.from_env({"BOOKSTORE_JWT_SECRET": SECRET}).warn_if_development_secret()
    assert caplog.text == ""
