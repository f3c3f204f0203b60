"""One side of the channel: requests sent, requests served, on chains that nest both ways.

Each thread that starts a request opens a *chain*, named on both sides. While it waits for
its reply, the same thread serves whatever the other side asks on that chain (learner code
calling back a grader object it was given), so calls nest to any depth without deadlock. The
other side serves each chain on a thread of its own, at most ``MAX_CHAINS`` at once. The grader
may cancel a chain: the kernel thread serving it gets :class:`~.errors.Cancelled` raised in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import queue
import socket
import threading
from typing import Any

from .codec import Codec, _copy_back, _dict, _list, _pairs
from .errors import Cancelled, ChannelClosed, ProtocolError
from .policy import MAX_CHAINS, MAX_MESSAGE_BYTES
from .proxy import _SPECIAL, Proxy

_CLOSED = object()


class Endpoint(Codec):
    """One side of the channel: sends requests, serves the other side's, on nested chains."""

    def __init__(
        self, sock: socket.socket, *, trusted: bool, namespace: dict[str, Any] | None = None
    ) -> None:
        super().__init__(trusted=trusted, requester=self)
        self._sock = sock
        self._namespace = namespace
        self._side = "g" if trusted else "k"
        self._send_lock = threading.Lock()
        self._chains: dict[str, queue.SimpleQueue[Any]] = {}
        self._chain_threads: dict[str, int] = {}
        self._origin_chains: dict[int, str] = {}
        self._local = threading.local()
        self.closed = threading.Event()

    def start(self) -> Endpoint:
        threading.Thread(target=self._read, name=f"bookstore-remote-{self._side}", daemon=True).start()
        return self

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()

    # ------------------------------------------------------------------ requests

    def request(
        self,
        op: str,
        target: Proxy | None,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
    ) -> Any:
        """Send one request on this thread's chain; serve nested requests until its reply."""
        chain, inbox = self._my_chain()
        number = next(self._ids)
        message: dict[str, Any] = {
            "id": number,
            "chain": chain,
            "op": op,
            "a": [self.encode(a) for a in args],
        }
        if target is not None:
            message["h"] = target._handle
        if name is not None:
            message["n"] = name
        if kwargs:
            message["k"] = {str(k): self.encode(v) for k, v in kwargs.items()}
        try:
            self._send(message)
        except OSError as error:
            raise ChannelClosed(f"the channel is closed: {error}") from None
        while True:
            try:
                reply = inbox.get(timeout=0.5)
            except queue.Empty:
                # A chain opened after the channel closed never receives the closing mark.
                reply = _CLOSED if self.closed.is_set() else None
            if reply is None:
                continue
            if reply is _CLOSED:
                raise ChannelClosed("the learner's kernel is gone" if self.trusted else "the grader is gone")
            if "op" in reply:
                self._serve(reply)
            elif reply.get("id") == number:
                return self._outcome(reply, args)
            # else: the late reply to a call given up on; dropped

    def cancel(self, thread_ident: int) -> None:
        """Ask the other side to stop what it runs for the chain ``thread_ident`` started."""
        chain = self._origin_chains.get(thread_ident)
        if chain is not None and not self.closed.is_set():
            with contextlib.suppress(OSError):
                self._send({"id": 0, "chain": chain, "op": "cancel", "a": []})

    def _my_chain(self) -> tuple[str, queue.SimpleQueue[Any]]:
        chain = getattr(self._local, "chain", None)
        if chain is None:
            chain = f"{self._side}{next(self._ids)}"
            self._local.chain = chain
            with self._lock:
                self._chains[chain] = queue.SimpleQueue()
                self._origin_chains[threading.get_ident()] = chain
        return chain, self._chains[chain]

    def _outcome(self, reply: dict[str, Any], args: list[Any]) -> Any:
        if "err" in reply:
            error = self.decode(reply["err"])
            raise error if isinstance(error, BaseException) else ProtocolError("an error that is not one")
        for index, value in _pairs(reply.get("out", [])):
            if isinstance(index, int) and 0 <= index < len(args):
                _copy_back(args[index], self.decode(value))
        return self.decode(reply.get("ok"))

    # ------------------------------------------------------------------ serving

    def _read(self) -> None:
        reader = self._sock.makefile("rb")
        try:
            while True:
                line = reader.readline(MAX_MESSAGE_BYTES + 1)
                if not line or len(line) > MAX_MESSAGE_BYTES:
                    break
                message = json.loads(line)
                if not isinstance(message, dict) or not isinstance(message.get("chain"), str):
                    break
                self._route(message)
        except (OSError, ValueError, RecursionError):
            pass
        finally:
            self.closed.set()
            with self._lock:
                inboxes = list(self._chains.values())
            for inbox in inboxes:
                inbox.put(_CLOSED)

    def _route(self, message: dict[str, Any]) -> None:
        chain = message["chain"]
        if message.get("op") == "cancel":
            if not self.trusted:  # only the grader may stop the other side's threads
                self._interrupt(chain)
            return
        with self._lock:
            inbox = self._chains.get(chain)
            if inbox is None:
                if "op" not in message:
                    return
                if len(self._chains) >= MAX_CHAINS:
                    inbox = None
                else:
                    inbox = self._chains[chain] = queue.SimpleQueue()
                    thread = threading.Thread(
                        target=self._serve_chain, args=(chain, inbox), name=f"remote-{chain}", daemon=True
                    )
                    thread.start()
        if inbox is None:
            self._reply(message, error=RuntimeError("too many calls at once"))
            return
        inbox.put(message)

    def _serve_chain(self, chain: str, inbox: queue.SimpleQueue[Any]) -> None:
        self._local.chain = chain
        self._chain_threads[chain] = threading.get_ident()
        while True:
            try:
                message = inbox.get()
                if message is _CLOSED:
                    return
                if "op" in message:
                    self._serve(message)
            except Cancelled:
                continue  # landed between two calls: nothing to stop

    def _interrupt(self, chain: str) -> None:
        ident = self._chain_threads.get(chain)
        if ident is not None:
            with contextlib.suppress(AttributeError, OSError):
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(Cancelled))

    def _serve(self, message: dict[str, Any]) -> None:
        out: list[list[Any]] = []
        try:
            args = [self.decode(a) for a in _list(message.get("a"))]
            kwargs = {str(k): self.decode(v) for k, v in _dict(message.get("k")).items()}
            op = str(message.get("op"))
            result = self._perform(op, message.get("h"), args, kwargs, message.get("n"))
            if op in ("call", "callmethod"):
                out = [[i, self.encode(a)] for i, a in enumerate(args) if type(a) in (list, dict, set)]
            self._reply(message, ok=self.encode(result), out=out)
        except BaseException as error:  # learner code may raise anything, SystemExit included
            self._reply(message, error=error)

    def _perform(
        self, op: str, handle: object, args: list[Any], kwargs: dict[str, Any], method: object = None
    ) -> Any:
        if op in ("ns_has", "ns_get", "ns_keys"):
            if self._namespace is None or self.trusted:
                raise ProtocolError("the grader has no namespace to offer")
            if op == "ns_keys":
                return [k for k in list(self._namespace) if isinstance(k, str) and not k.startswith("_")]
            name = args[0]
            if not isinstance(name, str):
                raise ProtocolError("a name must be a string")
            return name in self._namespace if op == "ns_has" else self._namespace[name]
        target = self._exported(handle)
        if op == "call":
            return target(*args, **kwargs)
        if op == "callmethod":
            return self._attribute(target, method)(*args, **kwargs)
        if op == "getattr":
            return self._attribute(target, args[0])
        if op == "setattr":
            if self.trusted:
                raise AttributeError("the grader's objects are read-only to learner code")
            setattr(target, str(args[0]), args[1])
            return None
        if op == "special" and args and args[0] in _SPECIAL:
            return _SPECIAL[args[0]](target, *args[1:])
        raise ProtocolError(f"unknown request {op!r}")

    def _attribute(self, target: object, name: object) -> Any:
        if not isinstance(name, str):
            raise ProtocolError("an attribute name must be a string")
        if self.trusted and name.startswith("_"):
            raise AttributeError(f"{name}: the grader's private attributes are not for learner code")
        return getattr(target, name)

    def _reply(
        self, message: dict[str, Any], *, ok: Any = None, out: Any = (), error: BaseException | None = None
    ) -> None:
        reply: dict[str, Any] = {"id": message.get("id"), "chain": message.get("chain")}
        if error is None:
            reply["ok"] = ok
            if out:
                reply["out"] = out
        else:
            try:
                reply["err"] = self.encode(error)
            except BaseException:
                reply["err"] = self.encode(RuntimeError(f"{type(error).__name__} (not describable)"))
        with contextlib.suppress(OSError):
            self._send(reply)

    def _send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        with self._send_lock:
            self._sock.sendall(data)
