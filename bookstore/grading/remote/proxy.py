"""Proxies: objects that live on the other side, used here as if they were local.

Every use of a :class:`Proxy` (a call, an attribute, ``len``, ``==``, ``with``) is one request
over the channel. A proxy class is made per remote class and named after it, so
``type(got).__name__`` reads naturally, and ``isinstance`` answers with the real class where
it exists on this side. Methods its class defines are called in one trip, not two.
"""

from __future__ import annotations

import contextlib
import operator
import types
from collections.abc import Callable
from typing import Any, Protocol

from .policy import lookup


class Requester(Protocol):
    """What a proxy talks through: an endpoint that can ask the other side (``Endpoint``)."""

    def request(
        self,
        op: str,
        target: Proxy | None,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
    ) -> Any: ...


_SPECIAL: dict[str, Callable[..., Any]] = {
    "len": len,
    "iter": iter,
    "next": next,
    "contains": operator.contains,
    "getitem": operator.getitem,
    "setitem": operator.setitem,
    "delitem": operator.delitem,
    "str": str,
    "repr": repr,
    "bool": bool,
    "hash": hash,
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "enter": lambda obj: obj.__enter__(),
    "exit": lambda obj, *exc: obj.__exit__(*exc),
}


class Proxy:
    """An object that lives on the other side: every use is a request over the channel."""

    __slots__ = ("_endpoint", "_handle")
    _local_class: type | None = None
    _methods: frozenset[str] = frozenset()  # names its class defines as methods: called in one trip

    def __init__(self, endpoint: Requester, handle: int) -> None:
        object.__setattr__(self, "_endpoint", endpoint)
        object.__setattr__(self, "_handle", handle)

    def _special(self, name: str, *args: Any) -> Any:
        return self._endpoint.request("special", self, [name, *args])

    def __getattr__(self, name: str) -> Any:
        if name in type(self)._methods:
            return _RemoteMethod(self, name)
        return self._endpoint.request("getattr", self, [name])

    def __setattr__(self, name: str, value: Any) -> None:
        self._endpoint.request("setattr", self, [name, value])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._endpoint.request("call", self, list(args), kwargs)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() asks this: the real class, where it exists here
        return type(self)._local_class or type(self)

    def __repr__(self) -> str:
        try:
            return str(self._special("repr"))
        except Exception:
            return f"<{type(self).__name__} in the learner's kernel>"

    def __str__(self) -> str:
        return str(self._special("str"))

    def __bool__(self) -> bool:
        return self._special("bool") is True

    def __hash__(self) -> int:
        return int(self._special("hash"))

    def __len__(self) -> int:
        return int(self._special("len"))

    def __iter__(self) -> Any:
        return self._special("iter")

    def __next__(self) -> Any:
        return self._special("next")

    def __contains__(self, item: object) -> bool:
        return self._special("contains", item) is True

    def __getitem__(self, key: object) -> Any:
        return self._special("getitem", key)

    def __setitem__(self, key: object, value: object) -> None:
        self._special("setitem", key, value)

    def __delitem__(self, key: object) -> None:
        self._special("delitem", key)

    def __eq__(self, other: object) -> Any:
        return self._special("eq", other)

    def __ne__(self, other: object) -> Any:
        return self._special("ne", other)

    def __lt__(self, other: object) -> Any:
        return self._special("lt", other)

    def __le__(self, other: object) -> Any:
        return self._special("le", other)

    def __gt__(self, other: object) -> Any:
        return self._special("gt", other)

    def __ge__(self, other: object) -> Any:
        return self._special("ge", other)

    def __enter__(self) -> Any:
        return self._special("enter")

    def __exit__(self, *exc: object) -> Any:
        return self._special("exit", *exc)


class _RemoteMethod:
    """``proxy.name`` where the class defines ``name`` as a method: its call is one request."""

    __slots__ = ("_name", "_owner")

    def __init__(self, owner: Proxy, name: str) -> None:
        self._owner, self._name = owner, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner._endpoint.request("callmethod", self._owner, list(args), kwargs, name=self._name)

    def __repr__(self) -> str:
        return f"<method {self._name} of {self._owner!r}>"


_proxy_classes: dict[tuple[str, str], type[Proxy]] = {}
_method_names: dict[type, list[str]] = {}


def _methods_of(kind: type) -> list[str]:
    """The public methods a class defines (not its instances' attributes), at most 200."""
    if kind not in _method_names:
        names = []
        for name in dir(kind):
            if not name.startswith("_"):
                with contextlib.suppress(Exception):
                    if isinstance(
                        inspect_static(kind, name),
                        types.FunctionType
                        | types.BuiltinFunctionType
                        | types.MethodDescriptorType
                        | types.WrapperDescriptorType
                        | classmethod
                        | staticmethod,
                    ):
                        names.append(name)
        _method_names[kind] = names[:200]
    return _method_names[kind]


def inspect_static(kind: type, name: str) -> Any:
    for base in kind.__mro__:
        if name in base.__dict__:
            return base.__dict__[name]
    raise AttributeError(name)


def _proxy_class(path: object, methods: object = None) -> type[Proxy]:
    """A Proxy subclass named after the remote class: ``type(got).__name__`` reads naturally."""
    key = (str(path[0]), str(path[1])) if isinstance(path, list) and len(path) == 2 else ("", "object")
    if key not in _proxy_classes:
        name = key[1].rsplit(".", 1)[-1] or "object"
        names = (
            frozenset(m for m in methods if isinstance(m, str)) if isinstance(methods, list) else frozenset()
        )
        attributes = {"__slots__": (), "_local_class": lookup(list(key)), "_methods": names}
        _proxy_classes[key] = type(name if name.isidentifier() else "object", (Proxy,), attributes)
    return _proxy_classes[key]
