"""Just enough of gRPC's client side to run interceptors and stubs with no network.

* ``FakeCall``: a unary call as an interceptor's continuation returns it; finished at once
  (as for a blocking call) or pending until the test finishes it (as for ``.future()``).
* ``RpcFailure``: the error of a failed call. Like gRPC's own, it is at the same time the
  finished call and its future, because gRPC's interceptor plumbing hands it back as one.
* ``InProcessChannel``: a ``grpc.Channel`` that routes each unary method to a Python object
  with that method's name (the fake services in ``tests/unit/gateway/fakes.py`` will do), so
  a real generated stub on ``grpc.intercept_channel(InProcessChannel(...), interceptor)``
  exercises gRPC's own interceptor machinery, blocking, ``.with_call`` and ``.future``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class RpcFailure(grpc.RpcError):
    """A failed call: an RpcError with a code, which is also its own finished future."""

    def __init__(
        self, code: grpc.StatusCode, details: str = "", trailing: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details
        self._trailing = trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing

    def done(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> RpcFailure:
        return self

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)


class FakeCall:
    """A unary call object: finished with a response or an error, or pending until told."""

    def __init__(self) -> None:
        self._done = False
        self._cancelled = False
        self._response: Any = None
        self._error: grpc.RpcError | None = None
        self._callbacks: list[Callable[[Any], None]] = []

    @classmethod
    def succeeded(cls, response: Any = "response") -> FakeCall:
        call = cls()
        call.succeed(response)
        return call

    def succeed(self, response: Any = "response") -> None:
        self._response = response
        self._finish()

    def fail(self, code: grpc.StatusCode, details: str = "") -> None:
        self._error = RpcFailure(code, details)
        self._finish()

    def cancel(self) -> bool:
        self._cancelled = True
        self._error = RpcFailure(grpc.StatusCode.CANCELLED, "cancelled by the caller")
        self._finish()
        return True

    def _finish(self) -> None:
        self._done = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def result(self, timeout: float | None = None) -> Any:
        if not self._done:
            raise AssertionError("result() of a pending call would block the test")
        if self._error is not None:
            raise self._error
        return self._response

    def exception(self, timeout: float | None = None) -> grpc.RpcError | None:
        if not self._done:
            raise AssertionError("exception() of a pending call would block the test")
        return self._error

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        if self._done:
            fn(self)
        else:
            self._callbacks.append(fn)


class _InProcessMethod:
    """The multicallable of one method: calls ``handler(request, timeout=...)``."""

    def __init__(self, handler: Callable[..., Any]) -> None:
        self._handler = handler

    def with_call(self, request: Any, timeout: float | None = None, **_options: Any) -> tuple[Any, FakeCall]:
        try:
            response = self._handler(request, timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
            details = error.details() if callable(getattr(error, "details", None)) else ""
            trailing = (
                error.trailing_metadata() if callable(getattr(error, "trailing_metadata", None)) else ()
            )
            raise RpcFailure(code, details or "", tuple(trailing or ())) from None
        return response, FakeCall.succeeded(response)

    def __call__(self, request: Any, timeout: float | None = None, **options: Any) -> Any:
        return self.with_call(request, timeout, **options)[0]

    def future(self, request: Any, timeout: float | None = None, **options: Any) -> Any:
        try:
            return self.with_call(request, timeout, **options)[1]
        except RpcFailure as failure:
            return failure


class InProcessChannel(grpc.Channel):
    """Routes ``/package.Service/Method`` to ``service.Method(request, timeout=...)``."""

    def __init__(self, service: object) -> None:
        self.service = service
        self.closed = False

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> Any:
        name = method.rsplit("/", 1)[-1]
        return _InProcessMethod(
            lambda request, timeout: getattr(self.service, name)(request, timeout=timeout)
        )

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        raise NotImplementedError

    def unsubscribe(self, callback: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True
