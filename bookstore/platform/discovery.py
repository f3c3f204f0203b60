"""Discovery that follows change: a registry the launcher keeps, and channels that follow it.

A static target (``ipv4:127.0.0.1:7001,127.0.0.1:7002``) is fixed when a channel opens. Add
a replica and nobody calls it; remove one and callers keep trying its address until gRPC's
round_robin gives up on it. The only way to tell a static caller is to restart it with a new
target, which drops its in-flight calls and its warm connections.

A *registry* turns that around. The launcher publishes, per service, the addresses of the
replicas that passed their health check: one small JSON file per service, replaced
atomically (write a temporary file, then ``rename``), so a reader sees the old list or the new
one, never half of one. A caller names the entry instead of the addresses,
``registry:<path of the file>``, and its :class:`FollowingChannel` watches the entry: when the
list changes, it opens a round-robin channel to the new list, sends every new call there, and
closes the old channel once calls already on it had time to finish. No caller restarts.

The order of a change matters, and is the launcher's job (``Cluster.scale``):

* **Scaling up**: start the replica, wait until its health check says SERVING, *then* publish
  it. Publishing first would send calls to a process that is still importing.
* **Scaling down**: publish the shorter list first, wait until followers had time to notice
  (:data:`FOLLOW_INTERVAL_S` and a margin), *then* stop the replica (SIGTERM, which lets calls
  in flight finish). Stopping first would fail the calls that raced the change.

Between changes, health at the connection level is gRPC's own: round_robin skips a replica
whose connection failed (a crash, ``cluster.kill``) and reconnects when it comes back. The
registry does not evict a crashed replica by itself; a production registry does, with health
checks it runs on its own schedule.

The production forms of the same idea: Consul (a registry with health checks; clients watch
it or ask its DNS interface), Kubernetes (a Service's endpoints list holds only ready pods;
kube-proxy or a headless Service's DNS follows it), and gRPC's xDS resolver, which streams
the list to the client. A DNS name re-resolved on a timer is the simplest form; gRPC caps
re-resolution at once per 30 s by default, so it follows change slowly.

When not to bother: a fixed set of replicas behind a load balancer you do not own (an L4 or
L7 proxy) needs no client-side discovery at all; the proxy follows the change.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

REGISTRY_SCHEME = "registry:"
# How often a following channel looks at its entry; a stat() of one small file, so cheap.
FOLLOW_INTERVAL_S = 0.2
# How long an old channel stays open after a change, for the calls already on it. Longer than
# any deadline the course sets on a call (the gateway's CreateOrder waits at most about 7 s).
DRAIN_S = 10.0


# ---------------------------------------------------------------------- the launcher's side
class Registry:
    """The launcher's registry: one ``<service>.json`` per service in ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def entry(self, service: str) -> Path:
        return self.directory / f"{service}.json"

    def target(self, service: str) -> str:
        """What a caller names to follow ``service``: ``registry:<path of its entry>``."""
        return REGISTRY_SCHEME + str(self.entry(service))

    def publish(self, service: str, addresses: Sequence[str]) -> None:
        """Replace ``service``'s entry with ``addresses``, atomically."""
        body = json.dumps({"service": service, "addresses": list(addresses), "published_at": time.time()})
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{service}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(body)
            os.replace(temporary, self.entry(service))  # atomic on POSIX: old list or new, never half
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def addresses(self, service: str) -> list[str]:
        return read_entry(self.entry(service))


def read_entry(path: Path) -> list[str]:
    """The addresses an entry lists; ``[]`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    addresses = data.get("addresses") if isinstance(data, dict) else None
    if not isinstance(addresses, list):
        return []
    return [a for a in addresses if isinstance(a, str) and a]


def registry_entry(target: str) -> Path | None:
    """The entry a ``registry:`` target names; ``None`` for any other target."""
    if not target.startswith(REGISTRY_SCHEME):
        return None
    path = target[len(REGISTRY_SCHEME) :]
    if not path:
        raise ValueError("a registry target names its entry: registry:<path of a JSON file>")
    return Path(path)


# ---------------------------------------------------------------------- the caller's side
class FollowingChannel(grpc.Channel):
    """A channel whose calls go to the addresses a registry entry lists now.

    It holds one real channel at a time, opened by ``open_addresses`` (round-robin over a
    list). A watcher thread stats the entry every ``interval_s``; when the list changes, new
    calls go to a new channel and the old one is closed ``drain_s`` later. Stubs made on this
    channel keep working across changes: each call asks for the current channel.

    Until the entry exists (a caller started before the launcher published) calls fail with
    UNAVAILABLE, as a static channel to an address nobody listens on would.
    """

    def __init__(
        self,
        entry: Path,
        open_addresses: Callable[[list[str]], grpc.Channel],
        *,
        interval_s: float = FOLLOW_INTERVAL_S,
        drain_s: float = DRAIN_S,
    ) -> None:
        self.entry = entry
        self._open_addresses = open_addresses
        self._interval_s = interval_s
        self._drain_s = drain_s
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._stamp: tuple[int, int] | None = None
        self.addresses: list[str] = []
        self.changes = 0  # how many times the list changed since this channel opened
        self._current: grpc.Channel | None = None
        self._draining: list[tuple[float, grpc.Channel]] = []
        self._refresh()
        self._watcher = threading.Thread(target=self._watch, name=f"follow {entry.name}", daemon=True)
        self._watcher.start()

    # -- following
    def _refresh(self) -> None:
        try:
            info = self.entry.stat()
            stamp = (info.st_mtime_ns, info.st_ino)  # replace() gives a new inode even within one tick
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        self._stamp = stamp
        addresses = read_entry(self.entry) if stamp else []
        if not addresses or addresses == self.addresses:
            return  # an emptied or broken entry keeps the last good list: stale beats nothing
        fresh = self._open_addresses(addresses)
        with self._lock:
            if self._closed.is_set():
                fresh.close()
                return
            old, self._current = self._current, fresh
            self.addresses = addresses
            self.changes += 1 if old is not None else 0
            if old is not None:
                self._draining.append((time.monotonic() + self._drain_s, old))

    def _close_drained(self) -> None:
        now = time.monotonic()
        with self._lock:
            done = [c for until, c in self._draining if until <= now]
            self._draining = [(until, c) for until, c in self._draining if until > now]
        for channel in done:
            with contextlib.suppress(Exception):
                channel.close()

    def _watch(self) -> None:
        while not self._closed.wait(self._interval_s):
            try:
                self._refresh()
                self._close_drained()
            except Exception:  # a watcher that died would freeze the list silently
                continue

    def current(self) -> grpc.Channel:
        with self._lock:
            channel = self._current
        if channel is None:
            raise _unavailable(f"no replica of {self.entry.stem} is registered yet ({self.entry})")
        return channel

    # -- grpc.Channel: each kind of multicallable resolves the current channel per call
    def unary_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                    *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        return _FollowingCallable(self, "unary_unary", method, request_serializer, response_deserializer)

    def unary_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        return _FollowingCallable(self, "unary_stream", method, request_serializer, response_deserializer)

    def stream_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        return _FollowingCallable(self, "stream_unary", method, request_serializer, response_deserializer)

    def stream_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                      *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        return _FollowingCallable(self, "stream_stream", method, request_serializer, response_deserializer)

    def subscribe(self, callback: Callable[[Any], None], try_to_connect: bool = False) -> None:
        self.current().subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[[Any], None]) -> None:
        with contextlib.suppress(grpc.RpcError):
            self.current().unsubscribe(callback)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            channels = [c for _, c in self._draining] + ([self._current] if self._current else [])
            self._draining, self._current = [], None
        for channel in channels:
            with contextlib.suppress(Exception):
                channel.close()

    def __enter__(self) -> FollowingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FollowingCallable:
    """A multicallable that resolves the owner's current channel at each call.

    The real multicallable is made once per channel, so a steady state costs a dict lookup.
    """

    def __init__(
        self, owner: FollowingChannel, kind: str, method: str, serializer: Any, deserializer: Any
    ) -> None:
        self._owner = owner
        self._kind = kind
        self._method = method
        self._serializer = serializer
        self._deserializer = deserializer
        self._made: tuple[grpc.Channel, Any] | None = None

    def _real(self) -> Any:
        channel = self._owner.current()
        made = self._made
        if made is None or made[0] is not channel:
            factory = getattr(channel, self._kind)
            made = (channel, factory(self._method, request_serializer=self._serializer,
                                     response_deserializer=self._deserializer))  # fmt: skip
            self._made = made
        return made[1]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        return self._real().with_call(*args, **kwargs)

    def future(self, *args: Any, **kwargs: Any) -> Any:
        return self._real().future(*args, **kwargs)


class _Unavailable(grpc.RpcError):
    """UNAVAILABLE raised before any call starts, with the ``code()`` and ``details()`` of gRPC's own."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[()]:
        return ()


def _unavailable(details: str) -> grpc.RpcError:
    return _Unavailable(details)
