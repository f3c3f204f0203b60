"""What may cross the channel, and what a class name sent by the other side may become here.

Values are JSON; nothing is unpickled. A class is rebuilt from its dotted name only for the
modules in :data:`REBUILDABLE`, and only with its own constructor. Functions of the modules in
``_DANGEROUS_MODULES`` (the file system, processes, the interpreter itself), and modules,
classes, frames and code objects, never leave the grader, not even as handles.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

MAX_MESSAGE_BYTES = 16 * 1024**2
MAX_CHAINS = 64  # threads one side may make the other serve at once
MAX_DEPTH = 40
MAX_TEXT = 2000
# Modules whose classes may be rebuilt on this side from a name the other side sent.
REBUILDABLE = (
    "builtins",
    "bookstore",
    "grpc",
    "google.protobuf",
    "sqlite3",
    "json",
    "concurrent.futures",
    "pika",
)
# Built-ins and modules whose functions never cross from the grader: they reach the file
# system, processes or the interpreter itself.
_DANGEROUS_MODULES = frozenset({
    "builtins", "os", "posix", "nt", "io", "_io", "sys", "subprocess", "_posixsubprocess", "shutil",
    "ctypes", "_ctypes", "importlib", "_imp", "marshal", "pickle", "_pickle", "pathlib", "tempfile",
    "socket", "_socket", "signal", "_signal", "gc", "inspect", "runpy", "code", "pty",
})  # fmt: skip
_NEVER_EXPORTED = (types.ModuleType, types.FrameType, types.CodeType, type)


def _path(cls: type) -> list[str]:
    return [str(getattr(cls, "__module__", "")), str(getattr(cls, "__qualname__", ""))]


def _rebuildable(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in REBUILDABLE)


def lookup(path: object) -> Any:
    """The class at ``[module, qualname]`` if its module may be rebuilt here, else None."""
    if not (isinstance(path, list) and len(path) == 2 and all(isinstance(p, str) for p in path)):
        return None
    module, qualname = path
    if not _rebuildable(module) or "<" in qualname:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:
        return None
    return found if isinstance(found, type) else None


def _is_proto(value: object) -> bool:
    message = sys.modules.get("google.protobuf.message")
    return message is not None and isinstance(value, message.Message)


def _grpc_details(error: BaseException) -> list[str] | None:
    grpc = sys.modules.get("grpc")
    if grpc is None or not isinstance(error, grpc.RpcError):
        return None
    try:
        code = error.code()  # type: ignore[attr-defined]
    except Exception:
        return None
    try:
        details = error.details()  # type: ignore[attr-defined]
    except Exception:
        details = ""  # a hand-made RpcError may answer code() only
    return [str(getattr(code, "name", code)), str(details or "")]


def _dangerous(value: object) -> bool:
    if isinstance(value, _NEVER_EXPORTED):
        return True
    if isinstance(value, types.BuiltinFunctionType | types.FunctionType):
        owner = getattr(value, "__self__", None)
        module = owner.__name__ if isinstance(owner, types.ModuleType) else getattr(value, "__module__", None)
        return (owner is None and module is None) or str(module).split(".")[0] in _DANGEROUS_MODULES
    return False
