"""A cluster's health probe meets a stranger on its port and keeps its head.

Another program on the host (another learner's cluster, a dev server, anything) may hold the
port a replica was given, or grab it between the launcher choosing it and the service binding
it. What answers there is not ours; it may speak garbage. The probe must call that "not ready"
(``STARTING``), never let ``http.client.BadStatusLine`` or a reset connection escape and end a
grading batch.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookstore.launcher.cluster import Cluster

pytestmark = pytest.mark.integration

GARBAGE = b"SSH-2.0-not-http-at-all\r\n\r\n"


def _answer_garbage(server: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(1)
            try:
                conn.recv(4096)
                conn.sendall(GARBAGE)
            except OSError:
                pass


@pytest.fixture
def garbage_port() -> Iterator[int]:
    """A real loopback server that answers every connection with a line that is not HTTP."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()
    thread = threading.Thread(target=_answer_garbage, args=(server, stop), daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        server.close()
        thread.join(timeout=5)


def test_status_calls_a_stranger_answering_garbage_not_ready_instead_of_raising(
    garbage_port: int, tmp_path: Path
) -> None:
    # owned=False: stop() only closes channels, it never signals the borrowed pid below.
    cluster = Cluster(work_dir=tmp_path, owned=False)
    for replicas in cluster.replicas.values():
        for replica in replicas:
            # A live pid (this test's own) and the stranger's port: the probe gets past
            # "is the process running?" and really talks to the garbage server.
            replica.port, replica.pid = garbage_port, os.getpid()
    try:
        states = {status.service: status.state for status in cluster.status()}
    finally:
        cluster.stop()
    assert states["gateway"] == "STARTING"
    assert set(states.values()) == {"STARTING"}, states
