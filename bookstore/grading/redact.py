"""What a learner may read in their feedback: their own frames, plain sentences, no hidden source.

Feedback is built from text that passed through the learner's kernel: cell errors, the
messages of failed checks, the outputs of the executed notebook. Three rules make that text
fit to hand back:

* **only the learner's own frames.** A cell error keeps the traceback frames of the learner's
  cells (IPython names them ``Cell In[3], line 2``) and drops library frames (``File
  /.../site-packages/...``), then is cut to :data:`MAX_TRACEBACK_LINES` lines and
  :data:`MAX_TRACEBACK_CHARS` characters: the learner sees where their code failed, not a
  page of grpc internals;
* **a gRPC error is a sentence.** ``str()`` of a ``grpc.RpcError`` is a multi-line debug blob
  (``<_InactiveRpcError of RPC that terminated with: status = ... debug_error_string = ...>``);
  it becomes ``gRPC call failed: NOT_FOUND: book 31337 not found``, the status code and the
  details, which is what the learner can act on;
* **no line of the hidden checks.** Checks run in the grading worker, so their source never
  reaches the kernel; but without the sandbox (``--isolation none``) a notebook can read the
  check file from disk and put it into an exception message. :class:`Redactor` removes every
  line of the check module that appears in the text. It stops a copy, not an encoding of it
  (base64): the sandbox, which hides the file, is the real answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MAX_TRACEBACK_LINES = 20
MAX_TRACEBACK_CHARS = 2000
REDACTED = "[hidden check source removed]"
# A hidden line shorter than this ("return x", "ns = {}") says nothing about the answers, and
# removing it would mangle the learner's own text.
MIN_HIDDEN_LINE_CHARS = 12

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RPC_ERROR = re.compile(
    r"<_?\w+ of RPC that terminated with:\s*status = StatusCode\.(?P<code>\w+)\s*"
    r'details = "(?P<details>.*?)"\s*(?:debug_error_string = "[^\n]*"\s*)?>',
    re.DOTALL,
)
_DEBUG_STRING = re.compile(r'\s*debug_error_string = "[^\n]*"')
# IPython's name for a frame in a notebook cell ("Cell In[3], line 2", older "Input In [3]").
_LEARNER_FRAME = re.compile(r"^(Cell In\s*\[|Input In\s*\[|<ipython-input-)")


def grpc_sentence(text: str) -> str:
    """Every gRPC debug blob in ``text`` replaced by ``gRPC call failed: CODE: details``."""
    text = _RPC_ERROR.sub(lambda m: f"gRPC call failed: {m['code']}: {m['details']}", text)
    return _DEBUG_STRING.sub("", text)


def cut(text: str, lines: int = MAX_TRACEBACK_LINES, chars: int = MAX_TRACEBACK_CHARS) -> str:
    kept = text.splitlines()
    if len(kept) > lines:
        kept = [*kept[: lines - 1], f"... ({len(kept) - lines + 1} more lines)"]
    text = "\n".join(kept)
    return text if len(text) <= chars else text[: chars - 3] + "..."


def learner_traceback(traceback: Iterable[Any], ename: str, evalue: str) -> str:
    """A cell error as the learner should read it: their frames, then ``ename: evalue``."""
    frames = []
    for entry in traceback:
        block = _ANSI.sub("", str(entry)).strip("\n")
        if _LEARNER_FRAME.match(block):
            frames.append(block)
    last = grpc_sentence(f"{ename}: {evalue}" if evalue else ename)
    return cut("\n".join([*frames, last]))


class Redactor:
    """Removes the lines of a hidden check module from learner-visible text."""

    def __init__(self, hidden_source: str) -> None:
        lines = {line.strip() for line in hidden_source.splitlines()}
        # Longest first, so a line that contains a shorter hidden line goes whole.
        self.lines = sorted((ln for ln in lines if len(ln) >= MIN_HIDDEN_LINE_CHARS), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for line in self.lines:
            if line in text:
                text = text.replace(line, REDACTED)
        return text

    def notebook(self, notebook: dict[str, Any]) -> dict[str, Any]:
        """``notebook`` with every string in its outputs redacted (in place; returned)."""
        for cell in notebook.get("cells", []):
            if isinstance(cell, dict) and isinstance(cell.get("outputs"), list):
                cell["outputs"] = [self._walk(output) for output in cell["outputs"]]
        return notebook

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        return value
