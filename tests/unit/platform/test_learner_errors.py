"""The registry of learner-facing error texts: who explains which error, and when not at all."""

from __future__ import annotations

import pika.exceptions
import pytest

from bookstore.messaging import broker
from bookstore.platform import learner_errors


class LibraryError(Exception):
    pass


class SpecificLibraryError(LibraryError):
    pass


class UnrelatedError(Exception):
    pass


def general(error: BaseException) -> str:
    return f"general: {error}"


def specific(error: BaseException) -> str:
    return f"specific: {error}"


def undecided(error: BaseException) -> str | None:
    return None


learner_errors.register(LibraryError, general)
learner_errors.register(SpecificLibraryError, specific)
learner_errors.register(UnrelatedError, undecided)


def test_an_error_is_explained_by_the_renderer_of_its_class_or_of_a_base_class() -> None:
    assert learner_errors.explain(LibraryError("down")) == "general: down"
    assert learner_errors.explain(SpecificLibraryError("gone")) == "specific: gone"


def test_an_error_nobody_registered_for_or_a_renderer_declines_is_not_explained() -> None:
    assert learner_errors.explain(KeyError("x")) is None
    assert learner_errors.explain(UnrelatedError("x")) is None


def test_an_error_raised_from_an_explained_one_is_explained_by_its_cause() -> None:
    try:
        try:
            raise LibraryError("lost")
        except LibraryError as lost:
            raise RuntimeError("publishing failed") from lost
    except RuntimeError as error:
        assert learner_errors.explain(error) == "general: lost"


def test_an_error_raised_while_handling_another_is_news_of_its_own() -> None:
    try:
        try:
            raise LibraryError("lost")
        except LibraryError:
            raise ValueError("a bug in the except block") from None
    except ValueError as error:
        assert error.__context__ is not None
        assert learner_errors.explain(error) is None


def test_registering_twice_keeps_one_entry() -> None:
    before = len(learner_errors._renderers)
    learner_errors.register(LibraryError, general)
    assert len(learner_errors._renderers) == before


def test_outside_ipython_nothing_is_installed() -> None:
    assert learner_errors.install() is False


@pytest.mark.parametrize(
    ("error", "opening"),
    [
        (pika.exceptions.StreamLostError("Transport indicated EOF"), "The connection to RabbitMQ"),
        (pika.exceptions.AMQPHeartbeatTimeout("no heartbeat"), "The connection to RabbitMQ"),
        (pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED - shutdown"), "The connection to"),
        (pika.exceptions.ChannelWrongStateError("Channel is closed."), "This connection or channel"),
        (pika.exceptions.AMQPConnectionError("refused"), "No connection to RabbitMQ"),
    ],
)
def test_a_gone_broker_is_explained_with_what_to_run(error: BaseException, opening: str) -> None:
    text = learner_errors.explain(error)
    assert text is not None and text.startswith(opening)
    assert f"pika said: {type(error).__name__}" in text
    assert "Restart Kernel and Run All Cells" in text


@pytest.mark.parametrize(
    "error",
    [
        pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - no queue 'q'"),  # the learner's mistake
        pika.exceptions.ConnectionClosedByBroker(530, "NOT_ALLOWED - vhost not found"),
        pika.exceptions.ProbableAuthenticationError("ACCESS_REFUSED"),  # its own message says more
        pika.exceptions.UnroutableError([]),
    ],
)
def test_other_pika_errors_keep_their_own_message(error: BaseException) -> None:
    assert learner_errors.explain(error) is None


def test_the_commands_are_rabbitmqctl_for_the_local_broker_and_docker_for_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker, "_last_address", broker._last_address)  # restored afterwards
    broker.connection_parameters(broker.LOCAL_URL, "test")
    local = broker.explain_connection_error(pika.exceptions.StreamLostError("EOF"))
    assert local is not None and "RabbitMQ at 127.0.0.1:5672" in local
    assert "rabbitmqctl status" in local and "rabbitmq-server -detached" in local
    broker.connection_parameters("amqp://guest:guest@127.0.0.1:32771/%2F", "test")
    elsewhere = broker.explain_connection_error(pika.exceptions.StreamLostError("EOF"))
    assert elsewhere is not None and "127.0.0.1:32771" in elsewhere and "docker ps" in elsewhere
    assert "rabbitmq-server" not in elsewhere
