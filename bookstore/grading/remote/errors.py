"""What can go wrong on the channel, and errors from the other side rebuilt as values here.

An exception raised on the other side crosses as data (its class path, arguments and text).
Where its class may be rebuilt here (``policy.lookup``) it is; otherwise it becomes a
:class:`RemoteError` subclass with the same name, whose text is the remote one. A gRPC error
becomes a mirror that answers ``code()`` and ``details()``, since grpc's own error classes
need internal state that never crosses.
"""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """The other side sent something this protocol does not allow."""


class ChannelClosed(ConnectionError):
    """The other side is gone (the kernel died, or grading ended)."""


class Cancelled(BaseException):
    """Raised in a kernel thread whose call the grader gave up on (a check's timeout)."""


class RemoteError(Exception):
    """An exception from the other side whose class does not exist, or may not be rebuilt, here."""

    remote_text = ""

    def __str__(self) -> str:
        return self.remote_text


_error_classes: dict[str, type[RemoteError]] = {}


def _error_class(path: object) -> type[RemoteError]:
    name = str(path[1]).rsplit(".", 1)[-1] if isinstance(path, list) and len(path) == 2 else "Error"
    name = name if name.isidentifier() else "Error"
    if name not in _error_classes:
        _error_classes[name] = type(name, (RemoteError,), {})
    return _error_classes[name]


def _rpc_error_class() -> type[BaseException]:
    import grpc

    class MirroredRpcError(grpc.RpcError):
        """A gRPC error raised on the other side: its code and details, as values."""

        _code: Any = None
        _details = ""

        def code(self) -> Any:
            return self._code

        def details(self) -> str:
            return self._details

        def __str__(self) -> str:
            return f"{getattr(self._code, 'name', self._code)}: {self._details}"

    return MirroredRpcError
