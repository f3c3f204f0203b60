"""Removes the containers a process started once that process is gone, however it went.

What: a small helper process, one per process that starts containers
(``bookstore.platform.containers`` starts it with the first container). It holds the read end
of a pipe whose write end only its owner holds. The kernel closes that end when the owner ends,
by a normal exit, an exception, or SIGKILL alike; the helper's read then returns, and it
removes every container labelled with the owner's session (``org.bookstore.session``), then
exits itself.

Why: testcontainers' answer to the same problem is its reaper, Ryuk, a container of its own
whose image must be pulled: offline that pull fails, so labs run with
``TESTCONTAINERS_RYUK_DISABLED=true``, and without this helper a kernel killed in the middle of a
notebook would leave its RabbitMQ running. The owner still removes its containers itself when a
cluster stops and at exit (``containers.stop_all``); the helper covers the death nothing in the
owner can react to.

When not to rely on it: the helper needs a Docker engine that still answers when the owner dies,
and it is itself a process: a machine that reboots or a ``kill -9`` of the helper too leaves the
containers (their labels let ``docker rm -f $(docker ps -aq --filter label=org.bookstore.project)``
find them). A process that forks children which outlive it keeps the pipe open through them,
and the helper then waits for those children too.

    python -m bookstore.platform.container_watchdog SESSION    # stdin: the pipe from its owner
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

# Every container, network and volume the project creates carries this label (value PROJECT),
# so a cleanup can find all of them; SESSION_LABEL tells one process's containers apart.
PROJECT_LABEL = "org.bookstore.project"
PROJECT = "bookstore"
SESSION_LABEL = "org.bookstore.session"


def start(session: str) -> subprocess.Popen[bytes]:
    """Start the helper for ``session``; keep the returned object (its stdin is the pipe) alive.

    Its own session, so a signal to the owner's process group (a kernel restart, Ctrl-C) does not
    end it before it has done its work.
    """
    return subprocess.Popen(
        [sys.executable, "-m", __name__, session],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def remove_session(session: str) -> int:
    """Remove (with their anonymous volumes) the containers labelled with ``session``; how many."""
    import docker

    client = docker.from_env(timeout=30)
    removed = 0
    try:
        for container in client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session}"}):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                removed += 1
    finally:
        client.close()
    return removed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):  # nothing is ever written: this returns b"" at the owner's end
            pass
    remove_session(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
