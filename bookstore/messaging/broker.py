"""Finding the message broker, and opening connections to it that behave well.

A process that publishes or consumes events needs one thing from its surroundings: the AMQP
URL of a RabbitMQ broker. ``resolve_rabbitmq_url`` finds it the same way everywhere (tests,
notebooks, services), in this order:

1. ``BOOKSTORE_RABBITMQ_URL`` (``Settings.rabbitmq_url``) when it is set: an explicit choice wins;
2. ``amqp://guest:guest@127.0.0.1:5672/%2F`` when a broker there accepts an AMQP connection
   within a second or two (a refused port fails at once; a silent one costs the short timeout);
3. a RabbitMQ container through testcontainers (``bookstore.platform.containers``) when a
   Docker engine answers and can run it;
4. otherwise ``BrokerUnavailable``, whose message names those three ways to provide one and,
   when an engine answered but the container could not be had (image absent and no registry,
   say), why, in one clause: no traceback from deep inside docker.

Why the probe opens a real AMQP connection rather than a TCP socket: a port that accepts TCP
may belong to something else, or to a broker that refuses ``guest``; only a finished AMQP
handshake proves the URL will work.

``connection_parameters`` gives every connection the same sane settings: a name that shows in
``rabbitmqctl list_connections`` (so you can tell the notification consumer from a notebook),
a heartbeat (a dead peer is noticed within about two heartbeats, not at the next TCP timeout),
a ``blocked_connection_timeout`` (a broker that blocks publishers under a memory or disk
alarm makes the connection fail instead of hanging forever) and few, quick connection
attempts, so a missing broker is reported in seconds. Values given in the URL's query string
(``?heartbeat=10``) win over these defaults.

When not to use this: a production deployment names its broker explicitly (step 1) and
never probes or starts containers; steps 2 and 3 exist so a learner's laptop and CI just work.

When the broker goes away under a notebook (it stopped, or restarted), pika raises
``StreamLostError`` or ``ConnectionClosedByBroker`` from deep inside itself, and every later
use of that connection's channels raises ``ChannelWrongStateError``. Importing this module
registers ``explain_connection_error`` with ``bookstore.platform.learner_errors``, so in a
notebook these errors read as what happened and what to run; outside IPython nothing changes.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions

from bookstore.platform import learner_errors
from bookstore.platform.settings import Settings

logger = logging.getLogger(__name__)

LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
PROBE_TIMEOUT_S = 1.5

HEARTBEAT_S = 30
BLOCKED_CONNECTION_TIMEOUT_S = 30.0
CONNECTION_ATTEMPTS = 2
RETRY_DELAY_S = 0.5
SOCKET_TIMEOUT_S = 2.0

CONNECTION_FORCED = 320  # AMQP reply code of a broker that closes connections as it shuts down
_LOST = (pika.exceptions.StreamLostError, pika.exceptions.AMQPHeartbeatTimeout)
_CLOSED_BEFORE = (pika.exceptions.ConnectionWrongStateError, pika.exceptions.ChannelWrongStateError)

# The broker this process last made connection parameters for: pika's errors do not say which
# broker they are about, and the learner's message should.
_last_address: str | None = None


class BrokerUnavailable(RuntimeError):
    """No RabbitMQ could be found; the message says how to provide one."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback: the message is the whole story
        # (what is missing and the three ways to get it); frames would only bury it.
        return [f"{type(self).__name__}: {self}"]


def connection_parameters(
    url: str,
    name: str,
    *,
    heartbeat_s: int = HEARTBEAT_S,
    blocked_connection_timeout_s: float = BLOCKED_CONNECTION_TIMEOUT_S,
    connection_attempts: int = CONNECTION_ATTEMPTS,
    retry_delay_s: float = RETRY_DELAY_S,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
) -> pika.URLParameters:
    """Parameters for ``url`` with a ``connection_name`` and the defaults above.

    A setting present in the URL's query string (``heartbeat``, ``blocked_connection_timeout``,
    ``connection_attempts``, ``retry_delay``, ``socket_timeout``) is kept as the URL says.
    """
    parameters = pika.URLParameters(url)
    in_url = set(parse_qs(urlsplit(url).query))
    defaults: dict[str, float | int] = {
        "heartbeat": heartbeat_s,
        "blocked_connection_timeout": blocked_connection_timeout_s,
        "connection_attempts": connection_attempts,
        "retry_delay": retry_delay_s,
        "socket_timeout": socket_timeout_s,
    }
    for setting, value in defaults.items():
        if setting not in in_url:
            setattr(parameters, setting, value)
    # pika merges these into its own client properties (product, capabilities, ...).
    parameters.client_properties = {**(parameters.client_properties or {}), "connection_name": name}
    global _last_address
    _last_address = f"{parameters.host}:{parameters.port}"
    return parameters


def connect(url: str, name: str) -> pika.BlockingConnection:
    """A blocking connection named ``name``; ``pika.exceptions.AMQPConnectionError`` if none opens."""
    return pika.BlockingConnection(connection_parameters(url, name))


def broker_answers(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a broker at ``url`` completes an AMQP handshake within about ``timeout_s``."""
    parameters = connection_parameters(
        url,
        "bookstore-probe",
        connection_attempts=1,
        retry_delay_s=0.0,
        socket_timeout_s=timeout_s,
    )
    parameters.stack_timeout = 2 * timeout_s  # bounds DNS + TCP + AMQP handshake together
    try:
        pika.BlockingConnection(parameters).close()
    except (pika.exceptions.AMQPError, OSError) as error:
        logger.debug("no broker answers at %s: %r", _redacted(url), error)
        return False
    return True


def resolve_rabbitmq_url(settings: Settings | None = None, *, local_url: str = LOCAL_URL) -> str:
    """The broker's AMQP URL: the setting, else a local broker, else a container; see the module doc.

    ``local_url`` is where step 2 looks (tests point it at a closed port to reach step 3).
    """
    settings = Settings.from_env() if settings is None else settings
    if settings.rabbitmq_url:
        return settings.rabbitmq_url
    if broker_answers(local_url):
        logger.info("using the RabbitMQ broker at %s", _redacted(local_url))
        return local_url
    container_problem = ""
    containers = _containers_module()
    if containers is not None and _docker_answers(containers):
        try:
            url: str = containers.rabbitmq_url()
        except containers.ContainerUnavailable as error:  # the third way is there but failed: say why
            container_problem = f" (an engine answers here, but: {error.cause})"
        else:
            logger.info("using RabbitMQ in a container at %s", _redacted(url))
            return url
    raise BrokerUnavailable(
        "no RabbitMQ broker found. Provide one in any of three ways: set BOOKSTORE_RABBITMQ_URL "
        "(e.g. amqp://guest:guest@host:5672/%2F); or run RabbitMQ on 127.0.0.1:5672 with user guest "
        "(`rabbitmq-server -detached` then `rabbitmqctl await_startup`); or start a Docker engine that "
        f"can run the RabbitMQ image, so testcontainers starts one{container_problem}."
    )


def explain_connection_error(error: BaseException) -> str | None:
    """What a learner should know and do when the connection to the broker is gone; None for
    errors that are not about the connection (a channel closed by a protocol error, say)."""
    where = f"RabbitMQ at {_last_address}" if _last_address else "RabbitMQ"
    if isinstance(error, pika.exceptions.ConnectionClosedByBroker):
        if error.reply_code != CONNECTION_FORCED:
            return None
        what = f"The connection to {where} was closed by the broker: it is stopping or restarting."
    elif isinstance(error, _LOST):
        what = f"The connection to {where} was lost: the broker stopped or restarted, or the network dropped."
    elif isinstance(error, _CLOSED_BEFORE):
        what = (
            f"This connection or channel to {where} is already closed: the connection was lost in an "
            "earlier cell (the broker stopped or restarted), or a channel error in an earlier cell "
            "closed the channel."
        )
    elif type(error) is pika.exceptions.AMQPConnectionError:  # subclasses (auth, protocol) say more
        what = f"No connection to {where} could be opened: nothing answered there."
    else:
        return None
    return "\n".join(
        [
            what,
            f"  (pika said: {type(error).__name__}: {error})",
            *_broker_commands(),
            "Then re-run this notebook from the top (Kernel > Restart Kernel and Run All Cells): "
            "connections and channels opened before are closed for good.",
        ]
    )


def _broker_commands() -> list[str]:
    """How to check and start the broker this process uses."""
    local = urlsplit(LOCAL_URL)
    if _last_address in (None, f"{local.hostname}:{local.port}", f"localhost:{local.port}"):
        return [
            "Check the broker:  rabbitmqctl status",
            "Start it:          rabbitmq-server -detached   then   rabbitmqctl await_startup",
        ]
    return [
        f"Check that the broker at {_last_address} runs (a container: `docker ps`; "
        "BOOKSTORE_RABBITMQ_URL names the broker when it is set)."
    ]


def _containers_module() -> ModuleType | None:
    """``bookstore.platform.containers`` if it (and what it imports) is installed; imported late
    because it pulls in the Docker client, which most runs never need."""
    try:
        return importlib.import_module("bookstore.platform.containers")
    except ImportError as error:
        logger.debug("no container support: %r", error)
        return None


def _docker_answers(containers: ModuleType) -> bool:
    try:
        return bool(containers.docker_available())
    except Exception as error:  # a probe that breaks means "no Docker", not a crash of the resolution
        logger.debug("docker_available() failed: %r", error)
        return False


def _redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


learner_errors.register(pika.exceptions.AMQPError, explain_connection_error)
learner_errors.install()
