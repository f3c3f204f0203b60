"""Opening the channel: the grader listens, the kernel connects and proves it was invited.

The grader runs one cell after the learner's (:func:`agent_cell_source`): it loads this
package from its files under a private name and calls :func:`serve_kernel`, which connects to
the grader's loopback port and sends the one-time token. :func:`accept_kernel` takes the first
connection that presents it; any other is closed.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

from .endpoint import Endpoint


def serve_kernel(namespace: dict[str, Any], host: str, port: int, token: str) -> Endpoint:
    """In the learner's kernel: connect to the grader and serve its requests from threads.

    Returns at once; the kernel's main thread is free again, and the grader drives everything.
    """
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(None)
    _no_delay(sock)
    sock.sendall((token + "\n").encode())
    return Endpoint(sock, trusted=False, namespace=namespace).start()


def _no_delay(sock: socket.socket) -> None:
    """Small messages, each awaited: Nagle's algorithm would hold some back for a delayed ACK
    (measured here: 4-6x slower round trips on loopback TCP)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def agent_cell_source(host: str, port: int, token: str) -> str:
    """The one cell the grader runs after the learner's: it loads this package and calls serve_kernel.

    The package is loaded from its files under a private name, not imported as
    ``bookstore.grading.remote``: the kernel need not import the grading package at all.
    """
    package = Path(__file__).parent
    name = "bookstore_grading_agent"
    body = "\n".join(
        [
            "import importlib.util, sys",
            f"spec = importlib.util.spec_from_file_location({name!r}, {str(package / '__init__.py')!r},"
            f" submodule_search_locations=[{str(package)!r}])",
            "agent = importlib.util.module_from_spec(spec)",
            f"sys.modules[{name!r}] = agent  # its modules import each other by this name",
            "spec.loader.exec_module(agent)",
            f"agent.serve_kernel(LEARNER, {host!r}, {port!r}, {token!r})",
        ]
    )
    # Builtins reached through __import__, so a learner who named something exec still gets graded.
    return (
        "__import__('builtins').exec(__import__('builtins').compile("
        f"{body!r}, '<bookstore grader>', 'exec'), {{'LEARNER': __import__('builtins').globals()}})"
    )


def accept_kernel(listener: socket.socket, token: str, timeout_s: float) -> Endpoint | None:
    """In the grader: the first connection that presents ``token``, as a started Endpoint."""
    import time

    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        listener.settimeout(left)
        try:
            sock, _ = listener.accept()
        except OSError:
            return None
        sock.settimeout(max(0.1, min(5.0, deadline - time.monotonic())))
        try:
            line = sock.makefile("rb").readline(len(token) + 2)
        except OSError:
            line = b""
        if line.strip() == token.encode():
            sock.settimeout(None)
            _no_delay(sock)
            return Endpoint(sock, trusted=True).start()
        sock.close()
    return None
