"""A RabbitMQ node of the test's own, for tests that stop the broker.

The shared broker on 127.0.0.1:5672 serves every other test, notebook and person on this
machine: stopping it would break them. A test that needs an outage starts a second node
instead: its own node name (``bookstore-test-<pid>-<hex>@localhost``), AMQP and distribution
ports (free ones), data and log folders under a temporary directory, no plugins, and its own
Erlang cookie (``HOME`` is that directory, where the node and ``rabbitmqctl`` both find it).
It runs as the current user, from the scripts in ``/usr/lib/rabbitmq/bin`` when present (the
ones on PATH may switch to the ``rabbitmq`` user, who cannot write our directory).

Starting it takes a while (20 s or so on a busy two-core machine: the Erlang VM, then a fresh
Mnesia database), so tests share one node per module; ``rabbitmqctl`` calls take 3-4 s each
(it boots a VM of its own). The node is tied to this process (it gets SIGTERM when pytest
dies) and stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bookstore.messaging.broker import broker_answers
from bookstore.platform.processes import spawn, terminate

SCRIPTS = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT_S = 120.0


def stable_port() -> int:
    """A free loopback port *below* the kernel's ephemeral range.

    The node's AMQP port is free while its application is stopped, and every client keeps
    trying to connect to it. A port inside the ephemeral range can then be taken by one of
    those very attempts (Linux lets a connection to a closed local port pick that same port
    as its source, and it connects to itself), and ``start_app`` fails with ``eaddrinuse``.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default start of the range
    for _ in range(200):
        port = secrets.randbelow(low - 10_000) + 10_000
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port found between 10000 and {low}")


def _script(name: str) -> str | None:
    packaged = SCRIPTS / name
    if packaged.exists():
        return str(packaged)
    return shutil.which(name)


def unavailable_reason() -> str | None:
    """None when a private node can be started here, else why not."""
    missing = [name for name in ("rabbitmq-server", "rabbitmqctl") if _script(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found: a private RabbitMQ node cannot be started"
    if shutil.which("erl") is None and not Path("/usr/lib/erlang").exists():
        return "no Erlang runtime: a private RabbitMQ node cannot be started"
    return None


@dataclass
class PrivateBroker:
    """A running node of our own: ``url`` to connect, ``stop_app``/``start_app`` for outages."""

    node: str
    port: int
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def ctl(self, *arguments: str, timeout_s: float = 120.0, attempts: int = 3) -> None:
        """``rabbitmqctl -n <node> ARGUMENTS``; tried again when the CLI could not reach the node.

        On a machine at load 30 the CLI's own VM can miss its connection to the node (exit 69,
        "unavailable", or 75, "temporary failure"); the commands used here are idempotent.
        """
        command = [_script("rabbitmqctl") or "rabbitmqctl", "-n", self.node, *arguments]
        for attempt in range(1, attempts + 1):
            done = subprocess.run(command, env=self.env, capture_output=True, timeout=timeout_s)
            if done.returncode == 0:
                return
            if done.returncode not in (69, 75) or attempt == attempts:
                raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
            time.sleep(1.0)  # a pause between attempts, not a wait for a condition

    def stop_app(self) -> None:
        """Stop RabbitMQ on the node (the Erlang VM stays): connections drop, the port refuses."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start it again and return once it accepts AMQP connections."""
        self.ctl("start_app")
        self.wait_answering()

    def wait_answering(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not broker_answers(self.url, timeout_s=1.0):
            if self.process.poll() is not None:
                log = _tail(self.home / "server.log")
                raise RuntimeError(f"the private RabbitMQ node exited ({self.process.returncode}):\n{log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the private RabbitMQ node did not answer within {timeout_s} s")
            time.sleep(0.2)


@contextlib.contextmanager
def private_rabbitmq() -> Iterator[PrivateBroker]:
    """Start a private node, yield it once it answers AMQP, stop it and delete its data afterwards."""
    home = Path(tempfile.mkdtemp(prefix="bookstore-rabbitmq-"))
    node = f"bookstore-test-{os.getpid()}-{secrets.token_hex(3)}@localhost"
    port = stable_port()
    (home / "enabled_plugins").write_text("[].\n")  # no management plugin: a faster start
    (home / "rabbitmq-env.conf").write_text("")  # not the system's, which may name another node
    env = {
        **os.environ,
        "HOME": str(home),  # the node's Erlang cookie goes here, and rabbitmqctl reads it here
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(stable_port()),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq"),  # absent: defaults
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),  # absent: defaults
        "RABBITMQ_PID_FILE": str(home / "pid"),
    }
    process = spawn("", env, home / "server.log", command=[_script("rabbitmq-server") or "rabbitmq-server"])
    broker = PrivateBroker(node, port, home, env, process)
    try:
        broker.wait_answering()
        yield broker
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):  # the signal below ends it anyway
            broker.ctl("stop", timeout_s=60)
        terminate([process.pid], grace_s=10, reap={process.pid: process})
        shutil.rmtree(home, ignore_errors=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
