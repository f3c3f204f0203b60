"""One line, once: how the launcher tells a learner it is running on a fallback.

Each backing service is found in an order of preference (see ``bookstore.platform.containers``):
an address someone configured, a server on this machine, a container, and last an in-process
stand-in. When resolution moves past the way the course prefers, what a learner sees changes
(the plots come from a direct scrape, not from Prometheus; traces from the embedded collector,
not Jaeger), so the code that resolves the service says so in one line: what was not found,
why, and what is used instead.

Once per process, because a notebook kernel or a test run starts many clusters and the
answer does not change between them: the second cluster finds the same fallback without
a second line (and ``containers`` does not repeat the failed attempt behind it either).

The line goes to the ``bookstore.fallback`` logger at WARNING. In a fresh notebook kernel no
logging is configured, and Python then writes a warning's bare message to stderr: the learner
sees exactly the line. Where logging is configured (services, pytest) it is an ordinary record.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("bookstore.fallback")

_lock = threading.Lock()
_said: set[str] = set()


def say_once(line: str) -> bool:
    """Log ``line`` at WARNING unless this process already said it; True when it was said now."""
    with _lock:
        if line in _said:
            return False
        _said.add(line)
    log.warning(line)
    return True


def _forget() -> None:
    """Let every line be said again (tests)."""
    with _lock:
        _said.clear()
