"""A broker that goes away under a notebook: a real pika error, told to the learner in plain words.

The tests do not stop the shared RabbitMQ. Their connection goes through a loopback TCP proxy
of their own, and cutting the proxy is, for pika, exactly a broker that vanished: the socket
ends, and pika raises ``StreamLostError`` from the next call. The last tests run a real kernel
(nbclient), because what a learner sees is decided there, and cut the proxy between cells.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import nbformat
import pika.exceptions
import pytest

from bookstore.messaging.broker import connect
from bookstore.platform import learner_errors

nbclient = pytest.importorskip("nbclient", reason="nbclient runs the kernel these tests look at")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TcpProxy:
    """Forwards loopback connections to ``target`` until ``cut()`` drops every one of them."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # cut() shut the listener
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        """The broker is gone: open connections end, new ones are refused. Idempotent."""
        if self.listener.fileno() == -1:
            return
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); a plain close() would not
        self.listener.close()
        with self.lock:
            for each in self.sockets:
                with contextlib.suppress(OSError):  # the peer may have gone first
                    each.shutdown(socket.SHUT_RDWR)
                each.close()


@pytest.fixture
def proxy(rabbitmq_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(rabbitmq_url)
    running = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    yield running
    running.cut()


def through(proxy: TcpProxy, rabbitmq_url: str) -> str:
    parts = urlsplit(rabbitmq_url)
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}").geturl()


def test_a_lost_connection_and_its_dead_channel_say_what_happened_and_what_to_run(
    proxy: TcpProxy, rabbitmq_url: str
) -> None:
    connection = connect(through(proxy, rabbitmq_url), "test-lost-connection")
    channel = connection.channel()
    channel.queue_declare("", exclusive=True)
    proxy.cut()
    with pytest.raises(pika.exceptions.StreamLostError) as lost:
        channel.queue_declare("", exclusive=True)
    text = learner_errors.explain(lost.value)
    assert text is not None
    assert text.startswith(f"The connection to RabbitMQ at 127.0.0.1:{proxy.port} was lost")
    assert "Restart Kernel and Run All Cells" in text
    with pytest.raises(pika.exceptions.ChannelWrongStateError) as closed:
        channel.queue_declare("", exclusive=True)
    assert (learner_errors.explain(closed.value) or "").startswith("This connection or channel")
    with pytest.raises(pika.exceptions.AMQPConnectionError) as refused:
        connect(through(proxy, rabbitmq_url), "test-lost-connection-again")
    assert (learner_errors.explain(refused.value) or "").startswith("No connection to RabbitMQ")


def run_cutting_before(cells: list[str], cut_before: int, proxy: TcpProxy) -> list[nbformat.NotebookNode]:
    """Run ``cells`` one by one in a fresh kernel, cutting the proxy before cell ``cut_before``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(nb, timeout=60, allow_errors=True)
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if index == cut_before:
                proxy.cut()
            client.execute_cell(cell, index)
    return list(nb.cells)


def error_of(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    errors = [output for output in cell.outputs if output.output_type == "error"]
    assert len(errors) == 1, cell.outputs
    return errors[0]


def test_in_a_week9_kernel_a_broker_restart_reads_as_a_message_not_a_traceback(
    proxy: TcpProxy, rabbitmq_url: str
) -> None:
    opening = (
        "from bookstore.messaging.broker import connect\n"
        f"channel = connect({through(proxy, rabbitmq_url)!r}, 'test-week9-kernel').channel()"
    )
    cells = run_cutting_before([opening, "channel.queue_declare('', exclusive=True)", "1 / 0"], 1, proxy)
    lost = error_of(cells[1])
    shown = ANSI.sub("", "\n".join(lost.traceback))
    assert shown.startswith(f"The connection to RabbitMQ at 127.0.0.1:{proxy.port} was lost")
    assert "Traceback" not in shown and "site-packages" not in shown, shown
    assert lost.ename == "StreamLostError"  # what a grader or a search engine needs is kept
    # Errors that are not about the broker keep IPython's usual traceback.
    assert "ZeroDivisionError" in ANSI.sub("", "\n".join(error_of(cells[2]).traceback))


def test_in_an_exercise_kernel_self_checks_and_the_broker_message_live_together(
    proxy: TcpProxy, rabbitmq_url: str
) -> None:
    # The messaging module first, the self-checks second: neither may replace the other's help.
    opening = (
        "from bookstore.messaging.broker import connect\n"
        "from bookstore.grading.selfcheck import check\n"
        f"channel = connect({through(proxy, rabbitmq_url)!r}, 'test-exercise-kernel').channel()\n"
        "def plan():\n    raise NotImplementedError('exercise')"
    )
    cells = [opening, "plan()", "channel.queue_declare('', exclusive=True)"]
    stub, lost = (error_of(cell) for cell in run_cutting_before(cells, 2, proxy)[1:])
    assert ANSI.sub("", "\n".join(stub.traceback)).startswith("not attempted yet: write the body of plan()")
    assert ANSI.sub("", "\n".join(lost.traceback)).startswith("The connection to RabbitMQ at")
